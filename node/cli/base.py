"""The `pynode` click group and what every command shares: the client, errors, and output formats."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from node.cli.gotemplate import align_tabs, render, render_table
from node.client import EngineClient


class CliState:
    def __init__(self, host: str | None) -> None:
        self.host = host
        self._client: EngineClient | None = None

    @property
    def client(self) -> EngineClient:
        if self._client is None:
            self._client = EngineClient(self.host)
        return self._client


# The modules under node.cli that add commands to `cli`. Commands load lazily: a short command imports
# only its own module (a cold start of `pynode run` is mostly imports), `--help` and names not in
# _COMMAND_MODULE import them all. Groups that several modules extend (`system`, `image`) are left out
# of the map on purpose. A test checks the map against the modules.
COMMAND_MODULES: tuple[str, ...] = ("build", "containers", "images", "networks", "system", "volumes")
_COMMAND_MODULE: dict[str, str] = {
    **dict.fromkeys(("attach", "container", "create", "events", "exec", "inspect", "kill", "logs", "pause", "ps",
                     "restart", "rm", "run", "start", "stats", "stop", "top", "unpause", "wait"), "containers"),
    **dict.fromkeys(("daemon", "info", "version"), "system"),
    **dict.fromkeys(("history", "images", "import", "load", "pull", "rmi", "save", "tag"), "images"),
    "build": "build",
    "builder": "build",
    "network": "networks",
    "volume": "volumes",
}


class LazyGroup(click.Group):
    def _load(self, module: str) -> None:
        importlib.import_module(f"node.cli.{module}")

    def _load_all(self) -> None:
        for module in COMMAND_MODULES:
            self._load(module)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMAND_MODULE.get(cmd_name)
        if module is not None:
            self._load(module)
        if cmd_name not in self.commands:
            self._load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-H", "--host", envvar="PYNODE_HOST", default=None, metavar="URL",
              help="Engine socket to connect to (unix:///run/pynode/pynode.sock; env PYNODE_HOST).")
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """pynode: a container engine that speaks Docker's CLI and API."""
    ctx.obj = CliState(host)


def client_of(ctx: click.Context) -> EngineClient:
    state: CliState = ctx.find_object(CliState)  # type: ignore[assignment]
    return state.client


pass_client = click.make_pass_decorator(CliState)


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    fmt: str | None,
    default: str,
    headers: Mapping[str, str],
    quiet: bool = False,
    quiet_field: str = "ID",
) -> None:
    """Docker's list output: `-q` ids, `--format json` one object a line, a Go template, or a table."""
    if quiet:
        for row in rows:
            click.echo(row[quiet_field])
        return
    template = fmt or default
    if template == "json":
        for row in rows:
            click.echo(json.dumps(row, separators=(",", ":")))
    elif template.startswith("table"):
        click.echo(render_table(template, rows, headers=headers))
    else:
        for row in rows:
            click.echo(render(template, row))


def print_objects(objects: Sequence[Any], *, fmt: str | None) -> None:
    """`inspect`: a JSON array by default (as Docker prints it), or a template per object."""
    if not fmt:
        click.echo(json.dumps(list(objects), indent=4))
        return
    if fmt == "json":
        for obj in objects:
            click.echo(json.dumps(obj, separators=(",", ":")))
        return
    for obj in objects:
        click.echo(render(fmt, obj))


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    lines = ["\t".join(header)] + ["\t".join(str(c) for c in row) for row in rows]
    click.echo(align_tabs(lines))


def die(message: str, *, code: int = 1) -> None:
    click.echo(message, err=True)
    sys.exit(code)


Command = Callable[..., Any]
