"""`pynode volume create/ls/inspect/rm/prune`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from node.cli.base import CliState, cli, pass_client, print_objects, print_rows
from node.errors import NodeError


@cli.group()
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.option("-d", "--driver", default="local")
@click.option("--label", multiple=True)
@click.option("-o", "--opt", multiple=True)
@click.argument("name", required=False)
@pass_client
def create(state: CliState, name: str | None, driver: str, label: tuple[str, ...], opt: tuple[str, ...]) -> None:
    """Create a volume."""
    body: dict[str, Any] = {"Name": name or "", "Driver": driver,
                            "Labels": dict(x.split("=", 1) if "=" in x else (x, "") for x in label),
                            "DriverOpts": dict(x.split("=", 1) for x in opt)}
    click.echo(state.client.post("/volumes/create", json=body)["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-f", "--filter", "filters", multiple=True)
@click.option("--format", "fmt")
@pass_client
def ls(state: CliState, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    flt: dict[str, dict[str, bool]] = {}
    for f in filters:
        k, _, v = f.partition("=")
        flt.setdefault(k, {})[v] = True
    params = {"filters": json.dumps(flt)} if flt else {}
    rows = [{**v, "Labels": ",".join(f"{k}={x}" for k, x in (v.get("Labels") or {}).items())}
            for v in state.client.get("/volumes", params=params)["Volumes"]]
    print_rows(rows, fmt=fmt, default="table {{.Driver}}\t{{.Name}}", headers={"Driver": "DRIVER",
               "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE", "Labels": "LABELS"},
               quiet=quiet, quiet_field="Name")


@volume.command("inspect")
@click.option("-f", "--format", "fmt")
@click.argument("names", nargs=-1, required=True)
@pass_client
def inspect(state: CliState, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more volumes."""
    print_objects([state.client.get(f"/volumes/{n}") for n in names], fmt=fmt)


@volume.command("rm")
@click.option("-f", "--force", is_flag=True)
@click.argument("names", nargs=-1, required=True)
@pass_client
def rm(state: CliState, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes (refused while a container uses one)."""
    failed = False
    for name in names:
        try:
            state.client.delete(f"/volumes/{name}", params={"force": "1" if force else "0"})
            click.echo(name)
        except NodeError as exc:
            click.echo(f"Error response from daemon: {exc}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True)
@click.option("-f", "--force", is_flag=True)
@pass_client
def prune(state: CliState, all_: bool, force: bool) -> None:
    """Remove unused volumes (anonymous ones, or all with -a)."""
    if not force and not click.confirm("WARNING! This will remove unused volumes.\nAre you sure you want to continue?"):
        return
    params = {"filters": json.dumps({"all": ["true"]})} if all_ else {}
    result = state.client.post("/volumes/prune", params=params)
    if result["VolumesDeleted"]:
        click.echo("Deleted Volumes:")
        for name in result["VolumesDeleted"]:
            click.echo(name)
    click.echo(f"Total reclaimed space: {result['SpaceReclaimed']}B")
