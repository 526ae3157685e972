"""`pyswarm lab`: lab hosts on this machine (up, ls, exec, kill, start, cut, heal, down)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orchestrator.lab.lab import Lab
from orchestrator.lab.plan import DEFAULT_NAME, DEFAULT_STATE_ROOT, DEFAULT_SUBNET


def _lab_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_ROOT,
                        envvar="PYSWARM_LAB_STATE_DIR", show_default=True,
                        help="Directory holding one state directory per lab (env PYSWARM_LAB_STATE_DIR).")(func)
    return click.option("--name", default=DEFAULT_NAME, envvar="PYSWARM_LAB", show_default=True,
                        help="Lab name: 1-10 lowercase letters or digits (env PYSWARM_LAB).")(func)


def _progress(host: str, message: str) -> None:
    click.echo(f"{host}: {message}" if host != "-" else message, err=True)


def _open(name: str, state_dir: Path) -> Lab:
    return Lab.open(name=name, state_dir=state_dir, progress=_progress)


@click.group()
def lab() -> None:
    """Lab hosts: pynode hosts in network namespaces on one machine, joined by a bridge."""


@lab.command()
@click.argument("count", type=int, metavar="N")
@click.option("--subnet", default=DEFAULT_SUBNET, show_default=True,
              help="IPv4 subnet of the lab bridge; the bridge takes its first address, hosts the next ones.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the engines.")
@_lab_options
def up(count: int, subnet: str, timeout: float, name: str, state_dir: Path) -> None:
    """Create N hosts (h1..hN), each running its own pynode daemon."""
    made = Lab.up(count, name=name, subnet=subnet, state_dir=state_dir, progress=_progress, timeout=timeout)
    click.echo(f"lab {made.name}: {len(made.hosts)} hosts on {made.state.bridge} ({made.state.subnet}); "
               f"try `pyswarm lab exec h1 -- pynode info`")


@lab.command(name="ls")
@_lab_options
def list_hosts(name: str, state_dir: Path) -> None:
    """List the lab's hosts: name, address, engine socket, pid, state."""
    found = _open(name, state_dir)
    rows = [("HOST", "ADDRESS", "SOCKET", "PID", "STATE")]
    for host in found.hosts:
        state = "running" if found.is_running(host.name) else "stopped"
        if found.is_cut(host.name):
            state += ",cut"
        pid = str(host.pid) if host.pid and state.startswith("running") else "-"
        rows.append((host.name, f"{host.address}/{found.state.prefixlen}", str(host.socket), pid, state))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "   " + row[-1])


@lab.command(name="exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("host")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@_lab_options
def exec_(host: str, cmd: tuple[str, ...], name: str, state_dir: Path) -> None:
    """Run CMD on HOST (its network namespace and hostname, PYNODE_HOST set): `lab exec h2 -- pynode info`."""
    if cmd[:1] == ("--",):
        cmd = cmd[1:]
    if not cmd:
        raise click.UsageError("no command given: pyswarm lab exec HOST -- CMD...")
    argv, env = _open(name, state_dir).exec_argv(host, *cmd)
    os.execvpe(argv[0], argv, env)  # the command's exit code is ours


@lab.command()
@click.argument("host")
@_lab_options
def kill(host: str, name: str, state_dir: Path) -> None:
    """SIGKILL HOST's pynode daemon (a crash)."""
    _open(name, state_dir).kill(host)
    click.echo(f"{host}: pynode killed")


@lab.command()
@click.argument("host")
@_lab_options
def start(host: str, name: str, state_dir: Path) -> None:
    """Start HOST's pynode daemon again, on the same data root."""
    found = _open(name, state_dir)
    found.start(host)
    click.echo(f"{host}: pynode running (pid {found.host(host).pid})")


@lab.command()
@click.argument("host")
@_lab_options
def cut(host: str, name: str, state_dir: Path) -> None:
    """Drop all of HOST's traffic (a partition)."""
    _open(name, state_dir).cut(host)
    click.echo(f"{host}: cut off")


@lab.command()
@click.argument("host")
@_lab_options
def heal(host: str, name: str, state_dir: Path) -> None:
    """Restore HOST's traffic."""
    _open(name, state_dir).heal(host)
    click.echo(f"{host}: reconnected")


@lab.command()
@_lab_options
def down(name: str, state_dir: Path) -> None:
    """Remove every host, link, process, mount and file of the lab (also after a crash)."""
    Lab.remove(name=name, state_dir=state_dir, progress=_progress)
