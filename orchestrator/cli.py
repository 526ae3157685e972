"""`pyswarm`: the cluster's command line (init/join, nodes, services, stacks, lab hosts)."""

from __future__ import annotations

import sys

import click

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


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="pyswarm")
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OrchestratorError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
