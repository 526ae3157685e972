"""`pyswarm network create|ls|inspect|rm` (overlay networks of the swarm) and `pyswarm secret|config ...`."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import click

from orchestrator.commands.common import client, key_values, since, table


@click.group()
def network() -> None:
    """Manage swarm (overlay) networks."""


@network.command()
@click.option("-d", "--driver", default="overlay", show_default=True, help="Driver (swarm networks are overlay).")
@click.option("--subnet", multiple=True, help="Subnet in CIDR form (one; the allocator picks one when absent).")
@click.option("--attachable", is_flag=True, help="Let standalone containers join the network.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("-o", "--opt", multiple=True, help="Driver options (com.docker.network.driver.mtu=1400, ...).")
@click.option("--label", multiple=True, help="Network labels (key=value).")
@click.argument("name")
@click.pass_context
def create(ctx: click.Context, driver: str, subnet: tuple[str, ...], attachable: bool, internal: bool,
           opt: tuple[str, ...], label: tuple[str, ...], name: str) -> None:
    """Create an overlay network."""
    body = {"Name": name, "Driver": driver, "Attachable": attachable, "Internal": internal,
            "Options": key_values(opt, "option"), "Labels": key_values(label, "label"),
            "IPAM": {"Config": [{"Subnet": s} for s in subnet]}}
    click.echo(client(ctx).post("/networks/create", json=body)["Id"])


@network.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.pass_context
def list_networks(ctx: click.Context, quiet: bool) -> None:
    """List swarm networks."""
    networks = client(ctx).get("/networks")
    if quiet:
        for item in networks:
            click.echo(item["Id"])
        return
    rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
    rows += [[n["Id"][:12], n["Name"], n["Driver"], n["Scope"]] for n in networks]
    table(rows)


@network.command()
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    control = client(ctx)
    click.echo(json.dumps([control.get(f"/networks/{ref}") for ref in refs], indent=4))


@network.command(name="rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def remove(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    control = client(ctx)
    for ref in refs:
        control.delete(f"/networks/{ref}")
        click.echo(ref)


def _file_object_group(word: str) -> click.Group:
    """`pyswarm secret ...` and `pyswarm config ...`: the same commands over /secrets and /configs."""
    plural = f"{word}s"

    @click.group(name=word, help=f"Manage swarm {plural}.")
    def group() -> None:
        pass

    @group.command(name="create", help=f"Create a {word} from a file, or from standard input with '-'.")
    @click.option("-l", "--label", multiple=True, help=f"{word.capitalize()} labels (key=value).")
    @click.argument("name")
    @click.argument("file", type=click.Path(allow_dash=True))
    @click.pass_context
    def create_object(ctx: click.Context, label: tuple[str, ...], name: str, file: str) -> None:
        if file == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                with open(file, "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                raise click.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="FILE") from None
        body = {"Name": name, "Labels": key_values(label, "label"), "Data": base64.b64encode(data).decode()}
        click.echo(client(ctx).post(f"/{plural}/create", json=body)["ID"])

    @group.command(name="ls", help=f"List {plural}.")
    @click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
    @click.pass_context
    def list_objects(ctx: click.Context, quiet: bool) -> None:
        items = client(ctx).get(f"/{plural}")
        if quiet:
            for item in items:
                click.echo(item["ID"])
            return
        rows = [["ID", "NAME", "CREATED", "UPDATED"]]
        rows += [[i["ID"][:25], i["Spec"]["Name"], since(i["CreatedAt"]), since(i["UpdatedAt"])] for i in items]
        table(rows)

    @group.command(name="inspect", help=f"Display detailed information on one or more {plural}.")
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_context
    def inspect_objects(ctx: click.Context, refs: tuple[str, ...]) -> None:
        control = client(ctx)
        found: list[Any] = [control.get(f"/{plural}/{ref}") for ref in refs]
        click.echo(json.dumps(found, indent=4))

    @group.command(name="rm", help=f"Remove one or more {plural}.")
    @click.argument("refs", nargs=-1, required=True)
    @click.pass_context
    def remove_objects(ctx: click.Context, refs: tuple[str, ...]) -> None:
        control = client(ctx)
        for ref in refs:
            control.delete(f"/{plural}/{ref}")
            click.echo(ref)

    return group


secret = _file_object_group("secret")
config = _file_object_group("config")
