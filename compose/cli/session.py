"""What the commands share: the engine connection (started when none answers), the backend, the loop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import click

from compose.apply import unwrap_group_error
from compose.backend import EngineBackend
from compose.cli import global_options
from compose.errors import ComposeError
from compose.planner import PROJECT_LABEL, ObservedContainer
from node.client import EngineClient
from node.config import DEFAULT_HOST, resolve_host

T = TypeVar("T")
DEFAULT_PARALLEL = 32


class EngineUnavailable(ComposeError):
    pass


def _start_local_daemon(client: EngineClient) -> None:
    """A fresh install: no daemon on the default socket. Start one, say so, and wait until it answers."""
    pynode = shutil.which("pynode") or os.path.join(os.path.dirname(sys.executable), "pynode")
    click.echo(f"pycompose: no pynode daemon answers on {client.host}; starting `pynode daemon`", err=True)
    os.makedirs("/var/log", exist_ok=True)
    with open("/var/log/pynode.log", "ab") as log:
        subprocess.Popen([pynode, "daemon"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.ping():
            return
        time.sleep(0.1)
    raise EngineUnavailable("started `pynode daemon`, but it did not answer within 30s (see /var/log/pynode.log)")


def engine_client(ctx: click.Context) -> EngineClient:
    """The engine for this command; starts a local daemon when the default socket has none."""
    opts = global_options(ctx)
    client = EngineClient(opts.host, timeout=None)
    if client.ping():
        return client
    if resolve_host(opts.host) == DEFAULT_HOST and os.geteuid() == 0:
        _start_local_daemon(client)
        return client
    raise EngineUnavailable(f"Cannot connect to the pynode daemon at {client.host}. Is the pynode daemon running?")


def parallel_limit(ctx: click.Context) -> int:
    limit = global_options(ctx).parallel
    return DEFAULT_PARALLEL if limit <= 0 else limit


def make_backend(ctx: click.Context, client: EngineClient) -> EngineBackend:
    return EngineBackend(client, parallel=parallel_limit(ctx))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """One loop per command; an ExceptionGroup from a TaskGroup becomes its first error."""
    try:
        return asyncio.run(coro)
    except BaseExceptionGroup as group:
        raise unwrap_group_error(group) from None


def container_summary(client: EngineClient, project: str) -> list[dict[str, Any]]:
    filters = json.dumps({"label": [f"{PROJECT_LABEL}={project}"]})
    found: list[dict[str, Any]] = client.get("/containers/json", params={"all": "1", "filters": filters})
    return found


def select_containers(
    containers: Sequence[ObservedContainer], services: Sequence[str], *, oneoff: bool = False,
) -> list[ObservedContainer]:
    """The containers of the named services (all when none is named), one-off `run` containers only if asked."""
    return [c for c in containers if (not services or c.service in services) and (oneoff or not c.oneoff)]
