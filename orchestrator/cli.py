"""`pyswarm`: the cluster's command line (init/join, nodes, services, stacks, lab hosts)."""

from __future__ import annotations

import sys

import click

from node.errors import NodeError
from orchestrator.commands import network as network_commands
from orchestrator.commands import node as node_commands
from orchestrator.commands import service as service_commands
from orchestrator.commands import stack as stack_commands
from orchestrator.commands import swarm as swarm_commands
from orchestrator.errors import OrchestratorError
from orchestrator.lab.cli import lab


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-H", "--host", envvar="PYNODE_HOST", default=None, metavar="URL",
              help="Engine socket of the node to act on (env PYNODE_HOST).")
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """pyswarm: form a cluster of pynode engines and run services on it."""
    ctx.obj = {"host": host}


@cli.command()
def version() -> None:
    """Show pyswarm's version."""
    from node.version import ENGINE_VERSION

    click.echo(f"pyswarm {ENGINE_VERSION}")


cli.add_command(lab)
cli.add_command(swarm_commands.init)
cli.add_command(swarm_commands.join)
cli.add_command(swarm_commands.join_token)
cli.add_command(swarm_commands.leave)
cli.add_command(swarm_commands.daemon)
cli.add_command(node_commands.node)
cli.add_command(service_commands.service)
cli.add_command(network_commands.network)
cli.add_command(network_commands.secret)
cli.add_command(network_commands.config)
cli.add_command(stack_commands.stack)


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="pyswarm")
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (OrchestratorError, NodeError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
