"""`pynode images|pull|load|save|import|tag|rmi|history`, `pynode image ...` (the same plus inspect, prune,
bootstrap) and `pynode system df`: Docker's commands, columns and messages."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from node.cli.base import CliState, cli, pass_client, print_objects, print_rows, print_table
from node.client import EngineClient
from node.errors import InvalidArgument, NodeError
from node.images.refs import parse_reference

_IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                  "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST", "SharedSize": "SHARED SIZE",
                  "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE"}
_IMAGE_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
_IMAGE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
_HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                    "Size": "SIZE", "Comment": "COMMENT"}
_HISTORY_DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
_UPLOAD_CHUNK = 1 << 20


# --- humanising, as Docker's go-units does ---------------------------------------------------------
def human_size(size: float, *, precision: int = 3) -> str:
    """`units.HumanSizeWithPrecision`: decimal units, `4.26MB`, `163MB`, `0B`."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_duration(seconds: float) -> str:
    """`units.HumanDuration`: `Less than a second`, `About a minute`, `3 hours`, `2 weeks`."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes, hours = s // 60, round(s / 3600)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def since(unix: int) -> str:
    return f"{human_duration(time.time() - unix)} ago" if unix > 0 else "N/A"


def created_at(unix: int) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def short(image_id: str, *, no_trunc: bool = False) -> str:
    return image_id if no_trunc else image_id.removeprefix("sha256:")[:12]


# --- groups ----------------------------------------------------------------------------------------
@cli.group()
def image() -> None:
    """Manage images."""


def _system_group() -> click.Group:
    """`pynode system`: shared by subsystems; whoever registers first creates it."""
    existing = cli.commands.get("system")
    if isinstance(existing, click.Group):
        return existing

    @cli.group("system")
    def system_group() -> None:
        """Manage the engine (df, ...)."""
    return system_group


# --- listing ---------------------------------------------------------------------------------------
def image_names(img: dict[str, Any], *, digests: bool = False) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows as Docker's CLI makes them: one per tag (with `--digests`, one per tag
    and digest of its repository), a `<none>` tag row for a repository known only by digest, and
    `<none>`/`<none>` for an image nothing names."""
    tags: dict[str, list[str]] = {}
    for tag in img.get("RepoTags") or []:
        repo, _, tag_part = tag.rpartition(":")
        tags.setdefault(repo, []).append(tag_part)
    by_digest: dict[str, list[str]] = {}
    for ref in img.get("RepoDigests") or []:
        repo, _, digest = ref.partition("@")
        by_digest.setdefault(repo, []).append(digest)
    rows = []
    for repo, tag_parts in tags.items():
        found = by_digest.pop(repo, [])  # a repository with tags shows no digest-only row
        repo_digests = found if digests else []
        for tag_part in tag_parts:
            rows += [(repo, tag_part, d) for d in repo_digests] or [(repo, tag_part, "<none>")]
    for repo, found in by_digest.items():
        rows += [(repo, "<none>", d) for d in found] if digests else [(repo, "<none>", "<none>")]
    return rows or [("<none>", "<none>", "<none>")]


def image_rows(images: list[dict[str, Any]], *, no_trunc: bool = False, digests: bool = False) -> list[dict[str, Any]]:
    """One row per name (see `image_names`), with Docker's --format fields."""
    rows = []
    for img in images:
        for repo, tag_part, digest in image_names(img, digests=digests):
            rows.append({
                "Repository": repo, "Tag": tag_part, "ID": short(img["Id"], no_trunc=no_trunc),
                "CreatedSince": since(img["Created"]), "CreatedAt": created_at(img["Created"]),
                "Size": human_size(img["Size"]), "VirtualSize": human_size(img["Size"]), "Digest": digest,
                "SharedSize": _maybe_size(img.get("SharedSize", -1)),
                "UniqueSize": _maybe_size(img["Size"] - img["SharedSize"]) if img.get("SharedSize", -1) >= 0
                else "N/A",
                "Containers": str(img["Containers"]) if img.get("Containers", -1) >= 0 else "N/A",
            })
    return rows


def _maybe_size(size: int) -> str:
    return human_size(size) if size >= 0 else "N/A"


def _filters_param(filters: tuple[str, ...], reference: str | None = None) -> dict[str, str]:
    parsed: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f'invalid filter "{item}": expected KEY=VALUE')
        parsed.setdefault(key, []).append(value)
    if reference:
        parsed.setdefault("reference", []).append(reference)
    return {"filters": json.dumps(parsed)} if parsed else {}


@click.command("images")
@click.argument("repository", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (including intermediate ones).")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--digests", is_flag=True, help="Show digests (pulled images have them; built or loaded ones none).")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter: dangling=true, reference=PATTERN, label=K[=V].")
@click.option("--format", "fmt", help="'json', 'table TEMPLATE' or a Go template.")
@pass_client
def list_images(state: CliState, repository: str | None, all_: bool, quiet: bool, no_trunc: bool,
                digests: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List images."""
    params = {"all": "1" if all_ else "0", **_filters_param(filters, repository)}
    rows = image_rows(state.client.get("/images/json", params=params), no_trunc=no_trunc, digests=digests)
    print_rows(rows, fmt=fmt, default=_IMAGE_DIGESTS if digests else _IMAGE_DEFAULT, headers=_IMAGE_HEADERS,
               quiet=quiet)


cli.add_command(list_images, "images")
image.add_command(list_images, "ls")
image.add_command(list_images, "list")


@image.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format with a Go template, or 'json'.")
@pass_client
def inspect(state: CliState, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more images."""
    found, missing = [], []
    for name in names:
        try:
            found.append(state.client.get(f"/images/{name}/json"))
        except NodeError as exc:
            missing.append(str(exc))
    if found or not fmt:
        print_objects(found, fmt=fmt)
    for message in missing:
        click.echo(f"Error: {message}", err=True)
    if missing:
        sys.exit(1)


@click.command("history")
@click.argument("name")
@click.option("-H", "--human", type=bool, default=True, show_default=True, help="Human readable sizes and dates.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="'json', 'table TEMPLATE' or a Go template.")
@pass_client
def history(state: CliState, name: str, human: bool, no_trunc: bool, quiet: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    entries = state.client.get(f"/images/{name}/history")
    rows = []
    for entry in entries:
        created_by = entry["CreatedBy"].replace("\t", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        ident = entry["Id"] if entry["Id"] == "<missing>" else short(entry["Id"], no_trunc=no_trunc)
        rows.append({
            "ID": ident, "CreatedBy": created_by, "Comment": entry["Comment"],
            "CreatedSince": since(entry["Created"]) if human else created_at(entry["Created"]),
            "CreatedAt": created_at(entry["Created"]),
            "Size": human_size(entry["Size"]) if human else str(entry["Size"]),
        })
    print_rows(rows, fmt=fmt, default=_HISTORY_DEFAULT, headers=_HISTORY_HEADERS, quiet=quiet)


cli.add_command(history, "history")
image.add_command(history, "history")


# --- tag / rmi / prune -----------------------------------------------------------------------------
@click.command("tag")
@click.argument("source")
@click.argument("target")
@pass_client
def tag(state: CliState, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    repo, tag_part = split_repo_tag(target)
    params = {"repo": repo, **({"tag": tag_part} if tag_part else {})}
    state.client.post(f"/images/{source}/tag", params=params)


cli.add_command(tag, "tag")
image.add_command(tag, "tag")


def split_repo_tag(text: str) -> tuple[str, str | None]:
    """`reg:5000/app:1` -> ("reg:5000/app", "1"); a port is not a tag."""
    name, _, digest = text.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return text if digest else name, None


@click.command("rmi")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@pass_client
def rmi(state: CliState, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    failed = False
    for name in names:
        try:
            items = state.client.delete(f"/images/{name}", params={"force": "1" if force else "0"})
        except NodeError as exc:
            click.echo(f"Error response from daemon: {exc}", err=True)
            failed = True
            continue
        for item in items or []:
            for key, value in item.items():
                click.echo(f"{key}: {value}")
    if failed:
        sys.exit(1)


cli.add_command(rmi, "rmi")
image.add_command(rmi, "rm")
image.add_command(rmi, "remove")


@image.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Accepted for compatibility.")
@pass_client
def prune(state: CliState, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images."""
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if all_ else "WARNING! This will remove all dangling images.")
    if not force and not click.confirm(f"{warning}\nAre you sure you want to continue?", default=False):
        return
    params = {"filters": json.dumps({"dangling": ["false" if all_ else "true"]})}
    report = state.client.post("/images/prune", params=params)
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        click.echo("Deleted Images:")
        for item in deleted:
            for key, value in item.items():
                click.echo(f"{key.lower()}: {value}")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed', 0), precision=4)}")


# --- load / save / import / bootstrap --------------------------------------------------------------
def _file_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(_UPLOAD_CHUNK):
        yield chunk


@click.command("load")
@click.option("-i", "--input", "input_", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read from a tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_client
def load(state: CliState, input_: Path | None, quiet: bool) -> None:
    """Load images from a tar archive (docker-archive or OCI layout, gzip or plain)."""
    if input_ is None and sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty")
    fh: IO[bytes] = open(input_, "rb") if input_ else sys.stdin.buffer  # noqa: SIM115
    try:
        messages = state.client.stream_json("POST", "/images/load", params={"quiet": "1" if quiet else "0"},
                                            content=fh if input_ else _file_chunks(fh))
        render_progress(messages, quiet=quiet)
    finally:
        if input_:
            fh.close()


cli.add_command(load, "load")
image.add_command(load, "load")


@click.command("pull")
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", default="", help="Set platform if the registry serves several (os/arch[/variant]).")
@pass_client
def pull(state: CliState, name: str, quiet: bool, platform: str) -> None:
    """Download an image from a registry: HOST[:PORT]/NAME[:TAG|@sha256:DIGEST] (no Docker Hub here)."""
    ref = parse_reference(name)
    if ref.tag is None and ref.digest is None and not quiet:
        click.echo("Using default tag: latest")
    params = {"fromImage": ref.familiar_name, "tag": ref.digest or ref.tag or "latest"}
    if platform:
        params["platform"] = platform
    render_pull(state.client.stream_json("POST", "/images/create", params=params), quiet=quiet)
    click.echo(ref.name + (f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"))


cli.add_command(pull, "pull")
image.add_command(pull, "pull")


def render_pull(messages: Iterator[dict[str, Any]], *, quiet: bool) -> None:
    """A pull's stream as Docker prints it: `<id>: <status>` lines (a bar's updates once per status when not on
    a terminal), then the `Digest:` and `Status:` lines."""
    if quiet:
        for _message in messages:
            pass
        return
    if sys.stdout.isatty():
        _render_pull_rich(messages)
        return
    seen: set[tuple[str, str]] = set()
    for message in messages:
        status, ident = message.get("status", ""), message.get("id", "")
        if (message.get("progressDetail") or {}).get("total") is not None:
            if (ident, status) in seen:
                continue
            seen.add((ident, status))
        click.echo(f"{ident}: {status}" if ident else status)


def _render_pull_rich(messages: Iterator[dict[str, Any]]) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False)) as bars:
        tasks: dict[str, Any] = {}
        for message in messages:
            status, ident = message.get("status", ""), message.get("id", "")
            detail = message.get("progressDetail")
            if detail is None or not ident:
                bars.console.print(f"{ident}: {status}" if ident else status, markup=False, highlight=False)
                continue
            if ident not in tasks:
                tasks[ident] = bars.add_task(f"{ident}: {status}", total=detail.get("total") or 1)
            total = detail.get("total") or bars.tasks[tasks[ident]].total
            done = status in ("Pull complete", "Already exists")
            bars.update(tasks[ident], description=f"{ident}: {status}", total=total,
                        completed=total if done else detail.get("current", 0))


def render_progress(messages: Iterator[dict[str, Any]], *, quiet: bool) -> None:
    """Docker's JSON progress stream: a rich bar per layer on a terminal, one line per layer otherwise."""
    if quiet:
        for message in messages:
            _print_final(message)
        return
    if sys.stdout.isatty():
        _render_rich(messages)
        return
    finished: set[str] = set()
    for message in messages:
        detail = message.get("progressDetail") or {}
        if "progressDetail" in message:
            if detail.get("current", 0) >= detail.get("total", 0) and message["id"] not in finished:
                finished.add(message["id"])
                click.echo(f"{message['id']}: {message['status']} {human_size(detail.get('total', 0))}")
        elif "status" in message:
            click.echo(message["status"])
        _print_final(message)


def _render_rich(messages: Iterator[dict[str, Any]]) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False)) as bars:
        tasks: dict[str, Any] = {}
        for message in messages:
            detail = message.get("progressDetail")
            if detail is not None:
                ident = message["id"]
                if ident not in tasks:
                    tasks[ident] = bars.add_task(f"{ident}: {message['status']}", total=detail.get("total") or 1)
                bars.update(tasks[ident], completed=detail.get("current", 0))
            elif "status" in message:
                bars.console.print(message["status"], markup=False, highlight=False)
            elif "stream" in message:
                bars.console.print(message["stream"].rstrip("\n"), markup=False, highlight=False)


def _print_final(message: dict[str, Any]) -> None:
    if "stream" in message:
        click.echo(message["stream"], nl=False)


@click.command("save")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file, not STDOUT.")
@pass_client
def save(state: CliState, names: tuple[str, ...], output: Path | None) -> None:
    """Save one or more images to a tar archive (docker-archive and OCI layout in one)."""
    if output is None and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    path = "/images/get"
    params = {"names": list(names)}
    if output is None:
        _save_to(state.client, path, params, sys.stdout.buffer)
        return
    try:
        with open(output, "wb") as fh:
            _save_to(state.client, path, params, fh)
    except BaseException:
        output.unlink(missing_ok=True)
        raise


def _save_to(client: EngineClient, path: str, params: dict[str, Any], out: IO[bytes]) -> None:
    with client.stream("GET", path, params=params) as response:
        for chunk in response.iter_bytes(_UPLOAD_CHUNK):
            out.write(chunk)


cli.add_command(save, "save")
image.add_command(save, "save")


@click.command("import")
@click.argument("source")
@click.argument("repository", required=False)
@click.option("-m", "--message", default="", help="Set a commit message for the imported image.")
@pass_client
def import_(state: CliState, source: str, repository: str | None, message: str) -> None:
    """Import a root filesystem tar (file or '-') as a one-layer image."""
    params: dict[str, str] = {"fromSrc": "-", "message": message}
    if repository:
        repo, tag_part = split_repo_tag(repository)
        params["repo"] = repo
        if tag_part:
            params["tag"] = tag_part
    fh: IO[bytes] = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    try:
        body = _file_chunks(fh) if source == "-" else fh
        for msg in state.client.stream_json("POST", "/images/create", params=params, content=body):
            if "status" in msg:
                click.echo(msg["status"])
    finally:
        if source != "-":
            fh.close()


cli.add_command(import_, "import")
image.add_command(import_, "import")


@image.command("bootstrap")
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Only print the result.")
@pass_client
def bootstrap(state: CliState, name: str, quiet: bool) -> None:
    """Build a base image with no registry: busybox[:TAG] (host busybox-static), debian:SUITE (mmdebstrap)."""
    for message in state.client.stream_json("POST", "/images/bootstrap", params={"name": name}):
        if "status" in message and not quiet:
            click.echo(message["status"], err=True)
        _print_final(message)


# --- system df -------------------------------------------------------------------------------------
system_group = _system_group()


@system_group.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.option("--format", "fmt", help="'json' or a Go template.")
@pass_client
def df(state: CliState, verbose: bool, fmt: str | None) -> None:
    """Show engine disk usage."""
    data = state.client.get("/system/df")
    summary = df_summary(data)
    if fmt == "json":
        for row in summary:
            click.echo(json.dumps(row, separators=(",", ":")))
        return
    if fmt:
        print_rows(summary, fmt=fmt, default=fmt, headers={})
        return
    if not verbose:
        print_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                    [[r["Type"], r["TotalCount"], r["Active"], r["Size"], r["Reclaimable"]] for r in summary])
        return
    _print_df_verbose(data)


def df_summary(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The four rows of `docker system df` with Docker's arithmetic for ACTIVE and RECLAIMABLE."""
    images = data.get("Images") or []
    layers = int(data.get("LayersSize") or 0)
    used = sum(i["Size"] - i["SharedSize"] for i in images if i.get("Containers", 0) > 0 and i["SharedSize"] >= 0)
    containers = data.get("Containers") or []
    volumes = data.get("Volumes") or []
    cache = data.get("BuildCache") or []
    c_size = sum(c.get("SizeRw") or 0 for c in containers)
    c_idle = sum(c.get("SizeRw") or 0 for c in containers if c.get("State") != "running")
    v_sizes = [((v.get("UsageData") or {}).get("Size") or 0, (v.get("UsageData") or {}).get("RefCount", 0))
               for v in volumes]
    v_size = sum(max(s, 0) for s, _ in v_sizes)
    b_size = sum(b.get("Size") or 0 for b in cache)
    return [
        _df_row("Images", len(images), sum(1 for i in images if i.get("Containers", 0) > 0), layers, layers - used),
        _df_row("Containers", len(containers), sum(1 for c in containers if c.get("State") == "running"),
                c_size, c_idle),
        _df_row("Local Volumes", len(volumes), sum(1 for _, r in v_sizes if r > 0), v_size,
                sum(max(s, 0) for s, r in v_sizes if r <= 0)),
        _df_row("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), b_size,
                sum(b.get("Size") or 0 for b in cache if not b.get("InUse") and not b.get("Shared"))),
    ]


def _df_row(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict[str, Any]:
    text = human_size(reclaimable, precision=4)
    if size > 0:
        text += f" ({reclaimable * 100 // size}%)"
    return {"Type": kind, "TotalCount": str(total), "Active": str(active),
            "Size": human_size(size, precision=4), "Reclaimable": text}


def _print_df_verbose(data: dict[str, Any]) -> None:
    click.echo("Images space usage:\n")
    rows = image_rows(data.get("Images") or [])
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
                [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"], r["SharedSize"],
                  r["UniqueSize"], r["Containers"]] for r in rows])
    click.echo("\nContainers space usage:\n")
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
                [[c.get("Id", "")[:12], c.get("Image", ""), json.dumps(c.get("Command", "")),
                  str(c.get("LocalVolumes", 0)), human_size(c.get("SizeRw") or 0), since(c.get("Created", 0)),
                  c.get("Status", ""), ",".join(n.lstrip("/") for n in c.get("Names") or [])]
                 for c in data.get("Containers") or []])
    click.echo("\nLocal Volumes space usage:\n")
    print_table(["VOLUME NAME", "LINKS", "SIZE"],
                [[v.get("Name", ""), str((v.get("UsageData") or {}).get("RefCount", 0)),
                  human_size(max((v.get("UsageData") or {}).get("Size") or 0, 0))]
                 for v in data.get("Volumes") or []])
    cache = data.get("BuildCache") or []
    click.echo(f"\nBuild cache usage: {human_size(sum(b.get('Size') or 0 for b in cache))}\n")
    print_table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
                [[b.get("ID", ""), b.get("Type", ""), human_size(b.get("Size") or 0), since(0), since(0),
                  str(b.get("UsageCount", 0)), str(b.get("Shared", False)).lower()] for b in cache])
