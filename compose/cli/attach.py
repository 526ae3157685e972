"""`up` in the foreground: follow every container's output until all stop, or Ctrl-C stops them all."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import click

from compose.cli.logstream import LogPrinter, short_name, stream_logs
from compose.cli.session import container_summary
from compose.model import Project
from compose.planner import ONEOFF_LABEL, SERVICE_LABEL
from node.client import EngineClient
from node.errors import NodeError


def _follow(client: EngineClient, c: dict[str, Any], *, project: Project, printer: LogPrinter, since: float,
            done: queue.Queue[dict[str, Any]]) -> None:
    try:
        info = client.get(f"/containers/{c['Id']}/json")
        stream_logs(client, c["Id"], name=short_name(project.name, c["Names"][0].lstrip("/")),
                    service=c["Labels"].get(SERVICE_LABEL, ""), printer=printer,
                    tty=bool(info["Config"].get("Tty")), follow=True, since=since)
    except (NodeError, OSError):
        pass
    finally:
        done.put(c)


def attach_and_wait(
    ctx: click.Context, client: EngineClient, project: Project, *, services: Sequence[str], since: float,
    abort_on_exit: bool, exit_code_from: str | None, no_color: bool, no_prefix: bool, stop: Callable[[], None],
) -> int:
    """Print the services' output; return the exit status `up` should end with."""
    containers = sorted((c for c in container_summary(client, project.name)
                         if c["Labels"].get(SERVICE_LABEL) in services and c["Labels"].get(ONEOFF_LABEL) != "True"),
                        key=lambda c: c["Names"][0])
    names = [short_name(project.name, c["Names"][0].lstrip("/")) for c in containers]
    printer = LogPrinter(names, [c["Labels"].get(SERVICE_LABEL, "") for c in containers],
                         colour=not no_color and sys.stdout.isatty(), prefix=not no_prefix)
    if names:
        printer.notice(f"Attaching to {', '.join(names)}")
    done: queue.Queue[dict[str, Any]] = queue.Queue()
    for c in containers:
        threading.Thread(target=_follow, kwargs={"client": client, "c": c, "project": project, "printer": printer,
                                                 "since": since, "done": done}, daemon=True).start()
    remaining = {c["Id"] for c in containers}
    code = 0
    try:
        while remaining:
            try:
                c = done.get(timeout=0.5)
            except queue.Empty:
                continue
            remaining.discard(c["Id"])
            exit_code = _exit_code(client, c["Id"])
            printer.notice(f"{short_name(project.name, c['Names'][0].lstrip('/'))} exited with code {exit_code}")
            service = c["Labels"].get(SERVICE_LABEL)
            if exit_code_from is not None and service == exit_code_from:
                code = exit_code
            elif exit_code_from is None and abort_on_exit:
                code = exit_code
            if abort_on_exit:
                printer.notice("Aborting on container exit...")
                stop()
                break
    except KeyboardInterrupt:
        printer.notice("Gracefully stopping... (press Ctrl+C again to force)")
        stop()
        return 130
    if exit_code_from is not None and code == 0:
        found = [c for c in containers if c["Labels"].get(SERVICE_LABEL) == exit_code_from]
        code = max((_exit_code(client, c["Id"]) for c in found), default=0)
    return code


def _exit_code(client: EngineClient, cid: str) -> int:
    try:
        return int(client.get(f"/containers/{cid}/json")["State"].get("ExitCode") or 0)
    except NodeError:
        return 0
