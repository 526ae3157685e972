"""`pyswarm node ls|inspect|update|promote|demote|rm`."""

from __future__ import annotations

import json

import click

from orchestrator.commands.common import client, key_values, table


@click.group()
def node() -> None:
    """Manage swarm nodes."""


@node.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.pass_context
def list_nodes(ctx: click.Context, quiet: bool) -> None:
    """List nodes in the swarm."""
    control = client(ctx)
    nodes = control.get("/nodes")
    if quiet:
        for item in nodes:
            click.echo(item["ID"])
        return
    me = (control.get("/local").get("state") or {}).get("node_id")
    rows = [["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS"]]
    for item in nodes:
        rows.append([item["ID"] + (" *" if item["ID"] == me else ""), item["Description"]["Hostname"],
                     item["Status"]["State"].capitalize(), item["Spec"]["Availability"].capitalize(),
                     manager_status(item)])
    table(rows)


def manager_status(item: dict[str, object]) -> str:
    status = item.get("ManagerStatus")
    if not isinstance(status, dict):
        return ""
    if status.get("Leader"):
        return "Leader"
    return str(status.get("Reachability", "")).capitalize()


@node.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--pretty", is_flag=True, help="Print in a human friendly format.")
@click.pass_context
def inspect(ctx: click.Context, refs: tuple[str, ...], pretty: bool) -> None:
    """Display detailed information on one or more nodes ("self" is this node)."""
    control = client(ctx)
    found = [control.get(f"/nodes/{_ref(control, ref)}") for ref in refs]
    if not pretty:
        click.echo(json.dumps(found, indent=4))
        return
    for item in found:
        click.echo(f"ID:\t\t\t{item['ID']}\nHostname:\t\t{item['Description']['Hostname']}\n"
                   f"Status:\n State:\t\t\t{item['Status']['State'].capitalize()}\n"
                   f" Availability:\t\t{item['Spec']['Availability'].capitalize()}\n"
                   f" Address:\t\t{item['Status']['Addr']}")
        if item.get("ManagerStatus"):
            click.echo(f"Manager Status:\n Address:\t\t{item['ManagerStatus']['Addr']}\n"
                       f" Raft Status:\t\t{manager_status(item)}\n Leader:\t\t"
                       f"{'Yes' if item['ManagerStatus']['Leader'] else 'No'}")


def _ref(control: object, ref: str) -> str:
    if ref != "self":
        return ref
    from orchestrator.client import ControlClient

    assert isinstance(control, ControlClient)
    return str(control.get("/local")["state"]["node_id"])


@node.command()
@click.argument("ref")
@click.option("--availability", type=click.Choice(["active", "pause", "drain"]))
@click.option("--role", type=click.Choice(["worker", "manager"]))
@click.option("--label-add", multiple=True, help="Add or update a node label (key=value).")
@click.option("--label-rm", multiple=True, help="Remove a node label if it exists.")
@click.pass_context
def update(ctx: click.Context, ref: str, availability: str | None, role: str | None, label_add: tuple[str, ...],
           label_rm: tuple[str, ...]) -> None:
    """Update a node."""
    control = client(ctx)
    body = {"availability": availability, "role": role, "labels_add": key_values(label_add, "label"),
            "labels_rm": list(label_rm)}
    item = control.post(f"/nodes/{_ref(control, ref)}/update", json=body)
    click.echo(item["ID"])


@node.command()
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def promote(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Promote one or more nodes to manager."""
    control = client(ctx)
    for ref in refs:
        control.post(f"/nodes/{_ref(control, ref)}/update", json={"role": "manager"})
        click.echo(f"Node {ref} promoted to a manager in the swarm.")


@node.command()
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def demote(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Demote one or more nodes from manager."""
    control = client(ctx)
    for ref in refs:
        control.post(f"/nodes/{_ref(control, ref)}/update", json={"role": "worker"})
        click.echo(f"Manager {ref} demoted in the swarm.")


@node.command(name="rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force remove a node from the swarm.")
@click.pass_context
def remove(ctx: click.Context, refs: tuple[str, ...], force: bool) -> None:
    """Remove one or more nodes from the swarm."""
    control = client(ctx)
    for ref in refs:
        control.delete(f"/nodes/{ref}", params={"force": str(force).lower()})
        click.echo(ref)


@node.command()
@click.argument("ref", default="self")
@click.pass_context
def ps(ctx: click.Context, ref: str) -> None:
    """List tasks running on a node ("self" by default)."""
    from orchestrator.commands.service import print_tasks

    control = client(ctx)
    print_tasks(control, control.get("/tasks", params={"node": _ref(control, ref)}), no_trunc=False, quiet=False)
