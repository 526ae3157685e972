"""The `pynode` click group and what every command shares: the client, errors, and output formats."""

from __future__ import annotations

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
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
