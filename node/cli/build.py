"""`pynode build` and `pynode builder prune`: BuildKit's plain progress on stderr, as `docker build` prints it.

A failed build prints the failing step, its last output lines and the Dockerfile around it (streamed by
the engine), then `ERROR: ...`, and exits 1; bad input is one `ERROR:` line. Nothing is tagged then.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from node.cli.base import CliState, cli, pass_client
from node.cli.images import human_size
from node.errors import InvalidArgument, NodeError


def _pairs(values: tuple[str, ...], what: str, *, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, eq, rest = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what}: {value!r}")
        if eq:
            out[key] = rest
        elif from_env:
            if key in os.environ:
                out[key] = os.environ[key]
        else:
            out[key] = ""
    return out


def _secrets(values: tuple[str, ...]) -> dict[str, bytes]:
    """`--secret id=ID,src=FILE` (or `env=VAR`; `source`/`type=file` accepted, as buildx does)."""
    out: dict[str, bytes] = {}
    for value in values:
        fields = dict(item.partition("=")[::2] for item in value.split(",") if item)
        ident = fields.get("id")
        src = fields.get("src") or fields.get("source")
        env = fields.get("env")
        if not ident or not (src or env or ident in os.environ):
            raise InvalidArgument(f"--secret {value}: expected id=ID,src=FILE or id=ID,env=VAR")
        if src:
            try:
                out[ident] = Path(src).expanduser().read_bytes()
            except OSError as exc:
                raise InvalidArgument(f"--secret {value}: cannot read {src}: {exc.strerror}") from None
        else:
            variable = env or ident
            if variable not in os.environ:
                raise InvalidArgument(f"--secret {value}: environment variable {variable} is not set")
            out[ident] = os.environ[variable].encode()
    return out


@cli.command("build")
@click.argument("context", type=click.Path(file_okay=False))
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (NAME[:TAG]).")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Set a build-time variable (KEY=VALUE).")
@click.option("--target", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto",
              show_default=True, help="Type of progress output (auto and tty print plain output here).")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image (KEY=VALUE).")
@click.option("--secret", "secrets", multiple=True, help="Secret to expose to the build (id=ID,src=FILE).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--iidfile", type=click.Path(dir_okay=False), help="Write the image ID to the file.")
@click.option("--network", help="Networking mode for the RUN instructions (default, none, host, a network).")
@click.option("--pull", is_flag=True, hidden=True, help="Accepted for compatibility: no registry is reachable.")
@click.option("--rm/--no-rm", default=True, hidden=True, help="Accepted for compatibility: step containers go.")
@pass_client
def build(state: CliState, context: str, tags: tuple[str, ...], dockerfile: str | None, build_args: tuple[str, ...],
          target: str | None, no_cache: bool, progress: str, labels: tuple[str, ...], secrets: tuple[str, ...],
          quiet: bool, iidfile: str | None, network: str | None, pull: bool, rm: bool) -> None:  # fmt: skip
    """Build an image from a Dockerfile (`-f -` reads it from stdin)."""
    quiet = quiet or progress == "quiet"
    image_id = ""
    from_stdin: Path | None = None
    if dockerfile == "-":
        fd, name = tempfile.mkstemp(prefix="Dockerfile.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(sys.stdin.buffer.read())
        dockerfile = name
        from_stdin = Path(name)
    try:
        messages = state.client.build(
            context, dockerfile=dockerfile, tags=tags, build_args=_pairs(build_args, "--build-arg", from_env=True),
            target=target, no_cache=no_cache, labels=_pairs(labels, "--label"), secrets=_secrets(secrets),
            quiet=quiet, network=network)  # fmt: skip
        for message in messages:
            if "aux" in message:
                image_id = str((message.get("aux") or {}).get("ID") or image_id)
            elif "stream" in message and not quiet:
                sys.stderr.write(str(message["stream"]))
                sys.stderr.flush()
    except NodeError as exc:
        sys.stderr.flush()
        click.echo(f"ERROR: {exc}", err=True)
        sys.exit(1)
    finally:
        if from_stdin is not None:
            from_stdin.unlink(missing_ok=True)
    if iidfile:
        Path(iidfile).write_text(image_id)
    if quiet:
        click.echo(image_id)


@cli.group()
def builder() -> None:
    """Manage builds."""


@builder.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all build cache (the only kind here).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_client
def builder_prune(state: CliState, all_: bool, force: bool) -> None:
    """Remove build cache."""
    if not force and sys.stdin.isatty() and not click.confirm(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?"):
        return
    result = state.client.prune_build_cache()
    for ident in result.get("CachesDeleted") or []:
        click.echo(f"Deleted build cache object: {str(ident).removeprefix('sha256:')[:25]}")
    click.echo(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}")
