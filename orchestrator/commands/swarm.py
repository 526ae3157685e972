"""`pyswarm init|join|join-token|leave|daemon`: forming and leaving the cluster."""

from __future__ import annotations

import click

from orchestrator.client import ControlClient
from orchestrator.commands.common import client, parse_duration


@click.command()
@click.option("--advertise-addr", default="", help="Address other nodes reach this manager at.")
@click.option("--listen-addr", default="", hidden=True, help="Accepted for Docker compatibility; the advertise "
              "address is where the manager listens.")
@click.option("--dispatcher-heartbeat", default="5s", show_default=True, help="Agents' heartbeat period.")
@click.option("--force-new-cluster", is_flag=True, help="Make a one-manager cluster from this manager's state.")
@click.pass_context
def init(ctx: click.Context, advertise_addr: str, listen_addr: str, dispatcher_heartbeat: str,
         force_new_cluster: bool) -> None:
    """Initialise a swarm: this node becomes its first manager."""
    control = client(ctx)
    body = {"advertise_addr": advertise_addr, "heartbeat_period": parse_duration(dispatcher_heartbeat),
            "force_new_cluster": force_new_cluster}
    result = _setup(control, "/swarm/init", body)
    click.echo(f"Swarm initialized: current node ({result['node_id']}) is now a manager.\n")
    tokens = control.get("/swarm")["JoinTokens"]
    click.echo("To add a worker to this swarm, run the following command:\n")
    click.echo(f"    pyswarm join --token {tokens['Worker']} {result['addr']}:2377\n")
    click.echo("To add a manager to this swarm, run 'pyswarm join-token manager' and follow the instructions.")


@click.command()
@click.option("--token", required=True, help="Token for entry into the swarm.")
@click.option("--advertise-addr", default="", help="Address other nodes reach this node at.")
@click.option("--listen-addr", default="", hidden=True)
@click.argument("remote")
@click.pass_context
def join(ctx: click.Context, token: str, advertise_addr: str, listen_addr: str, remote: str) -> None:
    """Join a swarm as a worker or a manager (the token decides)."""
    control = client(ctx)
    result = _setup(control, "/swarm/join", {"remote_addr": remote, "token": token, "advertise_addr": advertise_addr})
    click.echo("This node joined a swarm as a manager." if result["role"] == "manager"
               else "This node joined a swarm as a worker.")


def _setup(control: ControlClient, path: str, body: dict[str, object]) -> dict[str, object]:
    """init/join: the daemon is started if needed; when the request fails it exits by itself."""
    return dict(control.post(path, json=body, setup=True))


@click.command(name="join-token")
@click.argument("role", type=click.Choice(["worker", "manager"]))
@click.option("-q", "--quiet", is_flag=True, help="Only display the token.")
@click.option("--rotate", is_flag=True, help="Rotate the join token.")
@click.pass_context
def join_token(ctx: click.Context, role: str, quiet: bool, rotate: bool) -> None:
    """Manage join tokens."""
    control = client(ctx)
    if rotate:
        param = "rotate_worker_token" if role == "worker" else "rotate_manager_token"
        control.post("/swarm/update", params={param: "true"})
        if not quiet:
            click.echo(f"Successfully rotated {role} join token.\n")
    token = control.get("/swarm")["JoinTokens"]["Worker" if role == "worker" else "Manager"]
    if quiet:
        click.echo(token)
        return
    addr = control.get("/local")["state"]["advertise_addr"]
    click.echo(f"To add a {role} to this swarm, run the following command:\n")
    click.echo(f"    pyswarm join --token {token} {addr}:2377\n")


@click.command()
@click.option("-f", "--force", is_flag=True, help="Leave even as a manager (loses quorum if it is the last one).")
@click.pass_context
def leave(ctx: click.Context, force: bool) -> None:
    """Leave the swarm."""
    client(ctx).post("/swarm/leave", params={"force": str(force).lower()})
    click.echo("Node left the swarm.")


@click.command(hidden=True)
@click.option("--engine", required=True, help="The engine socket this daemon drives.")
@click.option("--data-root", required=True, help="The engine's data root (state goes to <data-root>/swarm).")
def daemon(engine: str, data_root: str) -> None:
    """Run this node's swarm daemon (started by init/join and by other commands as needed)."""
    from orchestrator.daemon.daemon import run_daemon

    run_daemon(data_root=data_root, engine_url=engine)
