"""`pynode network create|ls|inspect|rm|prune|connect|disconnect`."""

from __future__ import annotations

import json
from typing import Any

import click

from node.cli.base import CliState, cli, pass_client, print_objects, print_rows
from node.errors import InvalidArgument, NodeError

_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
            "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


@cli.group()
def network() -> None:
    """Manage networks."""


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {value!r}: expected KEY=VALUE")
        out[key] = val if eq else ""
    return out


@network.command("create")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver: bridge or macvlan.")
@click.option("--subnet", help="Subnet in CIDR form (one IPv4 subnet).")
@click.option("--gateway", help="Gateway of the subnet.")
@click.option("--ip-range", help="Allocate container addresses from this sub-range.")
@click.option("--internal", is_flag=True, help="No outbound access.")
@click.option("--attachable", is_flag=True, help="Accepted for compatibility.")
@click.option("-o", "--opt", "opts", multiple=True, help="Driver options (KEY=VALUE).")
@click.option("--label", "labels", multiple=True, help="Labels (KEY=VALUE).")
@click.argument("name")
@pass_client
def create(state: CliState, name: str, driver: str, subnet: str | None, gateway: str | None,
           ip_range: str | None, internal: bool, attachable: bool, opts: tuple[str, ...],
           labels: tuple[str, ...]) -> None:
    """Create a network."""
    config = {k: v for k, v in {"Subnet": subnet, "Gateway": gateway, "IPRange": ip_range}.items() if v}
    body = {"Name": name, "Driver": driver, "Internal": internal, "Attachable": attachable,
            "Options": _pairs(opts, "option"), "Labels": _pairs(labels, "label"),
            "IPAM": {"Driver": "default", "Config": [config] if config else []}}
    click.echo(state.client.post("/networks/create", json=body)["Id"])


def _row(net: dict[str, Any]) -> dict[str, Any]:
    return {"ID": net["Id"][:12], "Name": net["Name"], "Driver": net["Driver"], "Scope": net["Scope"],
            "IPv6": str(net["EnableIPv6"]).lower(), "Internal": str(net["Internal"]).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in net["Labels"].items()), "CreatedAt": net["Created"]}


def _filter_param(filters: tuple[str, ...]) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        grouped.setdefault(key, []).append(value)
    return {"filters": json.dumps(grouped)} if grouped else {}


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
@click.option("--no-trunc", is_flag=True, help="Full IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter (name=, id=, driver=, label=, type=).")
@click.option("--format", "fmt", help="Go template, 'table …' or 'json'.")
@pass_client
def ls(state: CliState, quiet: bool, no_trunc: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List networks."""
    nets = state.client.get("/networks", params=_filter_param(filters))
    rows = [_row(n) | ({"ID": n["Id"]} if no_trunc else {}) for n in sorted(nets, key=lambda n: n["Name"])]
    print_rows(rows, fmt=fmt, default=_DEFAULT, headers=_HEADERS, quiet=quiet)


network.add_command(ls, "list")


@network.command("inspect")
@click.option("-f", "--format", "fmt", help="Go template or 'json'.")
@click.argument("networks", nargs=-1, required=True)
@pass_client
def inspect(state: CliState, fmt: str | None, networks: tuple[str, ...]) -> None:
    """Show networks in detail."""
    print_objects([state.client.get(f"/networks/{ref}") for ref in networks], fmt=fmt)


@network.command("rm")
@click.argument("networks", nargs=-1, required=True)
@pass_client
def rm(state: CliState, networks: tuple[str, ...]) -> None:
    """Remove networks (each one tried; the exit code is 1 if any failed)."""
    failed: NodeError | None = None
    for ref in networks:
        try:
            state.client.delete(f"/networks/{ref}")
            click.echo(ref)
        except NodeError as exc:
            failed = exc
            if len(networks) > 1:
                click.echo(f"Error response from daemon: {exc}", err=True)
    if failed is not None:
        if len(networks) > 1:
            raise SystemExit(1)
        raise failed


network.add_command(rm, "remove")


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.option("--filter", "filters", multiple=True, help="label=KEY[=VALUE]")
@pass_client
def prune(state: CliState, force: bool, filters: tuple[str, ...]) -> None:
    """Remove networks no container uses."""
    if not force and not click.confirm("WARNING! This will remove all custom networks not used by at least one "
                                       "container.\nAre you sure you want to continue?"):
        return
    result = state.client.post("/networks/prune", params=_filter_param(filters))
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        click.echo("Deleted Networks:\n" + "\n".join(deleted))


@network.command("connect")
@click.option("--ip", help="IPv4 address on this network.")
@click.option("--alias", "aliases", multiple=True, help="Network-scoped alias.")
@click.argument("network_ref", metavar="NETWORK")
@click.argument("container")
@pass_client
def connect(state: CliState, network_ref: str, container: str, ip: str | None, aliases: tuple[str, ...]) -> None:
    """Connect a container to a network."""
    endpoint: dict[str, Any] = {"Aliases": list(aliases)}
    if ip:
        endpoint["IPAMConfig"] = {"IPv4Address": ip}
    state.client.post(f"/networks/{network_ref}/connect", json={"Container": container, "EndpointConfig": endpoint})


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the disconnection.")
@click.argument("network_ref", metavar="NETWORK")
@click.argument("container")
@pass_client
def disconnect(state: CliState, network_ref: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    state.client.post(f"/networks/{network_ref}/disconnect", json={"Container": container, "Force": force})
