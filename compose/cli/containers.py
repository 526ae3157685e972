"""ps, logs, images, top, port, ls: views of a project's containers."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import click

from compose.cli import load_from_context, main
from compose.cli.logstream import LogPrinter, short_name, stream_logs
from compose.cli.session import container_summary, engine_client
from compose.errors import ComposeError
from compose.planner import (
    CONFIG_FILES_LABEL,
    NUMBER_LABEL,
    ONEOFF_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
)
from node.client import EngineClient
from node.errors import NodeError


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Docker's plain column layout: upper-case headers, columns three spaces apart."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0), header_style="")
    for title in header:
        table.add_column(title, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console(width=1 << 12, highlight=False, soft_wrap=True).print(table)


def _service_containers(client: EngineClient, project: str, services: Sequence[str], *, oneoff: bool = False,
                        all_: bool = True) -> list[dict[str, Any]]:
    found = []
    for c in container_summary(client, project):
        labels = c.get("Labels") or {}
        if services and labels.get(SERVICE_LABEL) not in services:
            continue
        if labels.get(ONEOFF_LABEL) == "True" and not oneoff:
            continue
        if not all_ and c.get("State") not in ("running", "paused", "restarting"):
            continue
        found.append(c)
    return sorted(found, key=lambda c: (labels_of(c).get(SERVICE_LABEL, ""), int(labels_of(c).get(NUMBER_LABEL)
                                                                                    or 0), c["Names"][0]))


def labels_of(c: dict[str, Any]) -> dict[str, str]:
    return c.get("Labels") or {}


def _check_services(project_services: Sequence[str], services: Sequence[str]) -> None:
    unknown = [s for s in services if s not in project_services]
    if unknown:
        raise ComposeError(f"no such service: {', '.join(unknown)}")


def format_ports(ports: Sequence[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"
            out.append(f"{ip}:{p['PublicPort']}->{p['PrivatePort']}/{p.get('Type', 'tcp')}")
        else:
            out.append(f"{p['PrivatePort']}/{p.get('Type', 'tcp')}")
    return ", ".join(dict.fromkeys(out))


def _created(unix: float) -> str:
    seconds = max(int(time.time() - unix), 0)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return f"{seconds} second{'s' if seconds != 1 else ''} ago"


def _ps_object(project: str, c: dict[str, Any]) -> dict[str, Any]:
    labels = labels_of(c)
    name = c["Names"][0].lstrip("/")
    state = c.get("State", "")
    status = c.get("Status", "")
    health = "healthy" if "(healthy)" in status else "unhealthy" if "(unhealthy)" in status else \
        "starting" if "(health: starting)" in status else ""
    exit_code = 0
    if state == "exited" and "Exited (" in status:
        exit_code = int(status.split("Exited (", 1)[1].split(")", 1)[0])
    return {
        "ID": c["Id"], "Name": name, "Names": name, "Image": c.get("Image", ""), "Command": c.get("Command", ""),
        "Project": project, "Service": labels.get(SERVICE_LABEL, ""), "Created": c.get("Created", 0),
        "State": state, "Status": status, "Health": health, "ExitCode": exit_code, "Labels": labels,
        "Publishers": [{"URL": p.get("IP", ""), "TargetPort": p["PrivatePort"], "PublishedPort": p.get("PublicPort", 0),
                        "Protocol": p.get("Type", "tcp")} for p in c.get("Ports") or []],
        "Ports": format_ports(c.get("Ports") or []), "RunningFor": _created(float(c.get("Created", 0) or 0)),
    }


@main.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all stopped containers (including those created by run).")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--services", "list_services", is_flag=True, help="Display services.")
@click.option("--format", "fmt", default="table", help="Format the output: table or json.")
@click.option("--status", multiple=True, help="Filter services by status.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.argument("services", nargs=-1)
@click.pass_context
def ps_command(ctx: click.Context, all_: bool, quiet: bool, list_services: bool, fmt: str,
               status: tuple[str, ...], no_trunc: bool, services: tuple[str, ...]) -> None:
    """List containers."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(list(project.services), services)
    client = engine_client(ctx)
    found = _service_containers(client, project.name, services, oneoff=all_, all_=all_ or bool(status))
    if status:
        found = [c for c in found if c.get("State") in status]
    if list_services:
        for name in dict.fromkeys(labels_of(c).get(SERVICE_LABEL, "") for c in found):
            click.echo(name)
        return
    if quiet:  # full IDs, --no-trunc or not, as compose prints them for scripts
        for c in found:
            click.echo(c["Id"])
        return
    objects = [_ps_object(project.name, c) for c in found]
    if fmt == "json":
        for obj in objects:
            click.echo(json.dumps(obj))
        return
    if fmt != "table":
        raise ComposeError(f"unsupported --format {fmt!r}: use table or json")
    print_table(["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"],
                [[o["Name"], o["Image"], json.dumps(_trunc(o["Command"], no_trunc), ensure_ascii=False), o["Service"],
                  o["RunningFor"], o["Status"], o["Ports"]] for o in objects])


def _trunc(text: str, no_trunc: bool) -> str:
    return text if no_trunc or len(text) <= 20 else text[:19] + "…"


@main.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--no-color", is_flag=True, help="Produce monochrome output.")
@click.option("--no-log-prefix", is_flag=True, help="Don't print prefix in logs.")
@click.option("--since", help="Show logs since a timestamp (unix seconds).")
@click.option("--index", type=int, default=None, help="index of the container if service has multiple replicas.")
@click.argument("services", nargs=-1)
@click.pass_context
def logs_command(ctx: click.Context, follow: bool, tail: str, timestamps: bool, no_color: bool,
                 no_log_prefix: bool, since: str | None, index: int | None, services: tuple[str, ...]) -> None:
    """View output from containers."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(list(project.services), services)
    client = engine_client(ctx)
    found = _service_containers(client, project.name, services, oneoff=True)
    if index is not None:
        found = [c for c in found if labels_of(c).get(NUMBER_LABEL) == str(index)]
    names = [short_name(project.name, c["Names"][0].lstrip("/")) for c in found]
    ansi = ctx.find_root().params.get("ansi", "auto")
    colour = not no_color and (ansi == "always" or (ansi == "auto" and sys.stdout.isatty()))
    printer = LogPrinter(names, [labels_of(c).get(SERVICE_LABEL, "") for c in found], colour=colour,
                         prefix=not no_log_prefix)
    since_value = float(since) if since else None

    def one(c: dict[str, Any], name: str) -> None:
        try:
            tty = bool(client.get(f"/containers/{c['Id']}/json")["Config"].get("Tty"))
            stream_logs(client, c["Id"], name=name, service=labels_of(c).get(SERVICE_LABEL, ""), printer=printer,
                        tty=tty, follow=follow, tail=tail, timestamps=timestamps, since=since_value)
        except (NodeError, OSError):
            pass

    if not follow:
        for c, name in zip(found, names, strict=True):
            one(c, name)
        return
    threads = [threading.Thread(target=one, args=(c, name), daemon=True) for c, name in zip(found, names, strict=True)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        return


@main.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--format", "fmt", default="table", help="Format the output: table or json.")
@click.argument("services", nargs=-1)
@click.pass_context
def images_command(ctx: click.Context, quiet: bool, fmt: str, services: tuple[str, ...]) -> None:
    """List images used by the created containers."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(list(project.services), services)
    client = engine_client(ctx)
    rows = []
    for c in _service_containers(client, project.name, services):
        try:
            image = client.get(f"/images/{c['ImageID']}/json") if c.get("ImageID") else \
                client.get(f"/images/{c['Image']}/json")
        except NodeError:
            image = {"Id": c.get("ImageID", ""), "RepoTags": [c.get("Image", "")], "Size": 0}
        tag = (image.get("RepoTags") or [c.get("Image", "")])[0]
        repo, _, version = tag.rpartition(":") if ":" in tag else (tag, "", "latest")
        rows.append({"ContainerName": c["Names"][0].lstrip("/"), "Repository": repo, "Tag": version,
                     "ID": image.get("Id", ""), "Size": image.get("Size", 0)})
    if quiet:
        for row in dict.fromkeys(r["ID"] for r in rows):  # full IDs without "sha256:", as compose prints them
            click.echo(row.removeprefix("sha256:"))
        return
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
                [[r["ContainerName"], r["Repository"], r["Tag"], r["ID"].removeprefix("sha256:")[:12],
                  _human_size(int(r["Size"] or 0))] for r in rows])


def _human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


@main.command("top")
@click.argument("services", nargs=-1)
@click.pass_context
def top_command(ctx: click.Context, services: tuple[str, ...]) -> None:
    """Display the running processes."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(list(project.services), services)
    client = engine_client(ctx)
    for c in _service_containers(client, project.name, services, all_=False):
        top = client.get(f"/containers/{c['Id']}/top")
        click.echo(c["Names"][0].lstrip("/"))
        print_table(top.get("Titles") or [], top.get("Processes") or [])
        click.echo()


@main.command("port")
@click.option("--protocol", default="tcp", type=click.Choice(["tcp", "udp"]), help="tcp or udp.")
@click.option("--index", type=int, default=1, help="Index of the container if service has multiple replicas.")
@click.argument("service")
@click.argument("private_port", type=int)
@click.pass_context
def port_command(ctx: click.Context, protocol: str, index: int, service: str, private_port: int) -> None:
    """Print the public port for a port binding."""
    project = load_from_context(ctx, services=[service], from_labels=True)
    _check_services(list(project.services), [service])
    client = engine_client(ctx)
    found = [c for c in _service_containers(client, project.name, [service])
             if labels_of(c).get(NUMBER_LABEL) == str(index)]
    if not found:
        raise ComposeError(f"service {service}: no container with index {index}")
    info = client.get(f"/containers/{found[0]['Id']}/json")
    bindings = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{private_port}/{protocol}") or []
    if not bindings:
        bindings = ((info.get("HostConfig") or {}).get("PortBindings") or {}).get(f"{private_port}/{protocol}") or []
    if not bindings:
        raise ComposeError(f"no port {private_port}/{protocol} for container {found[0]['Names'][0].lstrip('/')}")
    for b in bindings:
        click.echo(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}")


@main.command("ls")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all stopped Compose projects.")
@click.option("-q", "--quiet", is_flag=True, help="Only display project names.")
@click.option("--format", "fmt", default="table", help="Format the output: table or json.")
@click.option("--filter", "filters", multiple=True, help="Filter output based on conditions (name=...).")
@click.pass_context
def ls_command(ctx: click.Context, all_: bool, quiet: bool, fmt: str, filters: tuple[str, ...]) -> None:
    """List running compose projects."""
    client = engine_client(ctx)
    containers = client.get("/containers/json", params={"all": "1",
                                                         "filters": json.dumps({"label": [PROJECT_LABEL]})})
    projects: dict[str, dict[str, Any]] = {}
    for c in containers:
        labels = labels_of(c)
        entry = projects.setdefault(labels[PROJECT_LABEL], {"states": {}, "files": labels.get(CONFIG_FILES_LABEL, "")})
        entry["states"][c["State"]] = entry["states"].get(c["State"], 0) + 1
    rows = []
    for name, entry in sorted(projects.items()):
        states: dict[str, int] = entry["states"]
        if not all_ and not states.get("running"):
            continue
        if any(f.startswith("name=") and f[5:] not in name for f in filters):
            continue
        status = ", ".join(f"{state}({count})" for state, count in sorted(states.items()))
        rows.append({"Name": name, "Status": status, "ConfigFiles": entry["files"]})
    if quiet:
        for row in rows:
            click.echo(row["Name"])
    elif fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(["NAME", "STATUS", "CONFIG FILES"], [[r["Name"], r["Status"], r["ConfigFiles"]] for r in rows])
