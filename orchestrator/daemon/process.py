"""Starting, finding and stopping a node's `pyswarm daemon`.

The daemon must live where its engine lives: `spawn_daemon` asks the kernel who serves the engine's
socket (SO_PEERCRED) and starts the daemon inside that process's network and UTS namespaces, so
`pyswarm -H unix:///run/pynode-lab-h2.sock join ...` run from anywhere starts h2's daemon on h2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from node.config import socket_path_of
from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.errors import OrchestratorError

PYSWARM = Path(sys.executable).parent / "pyswarm"


def engine_pid(engine_url: str) -> int:
    """The pid of the process serving the engine socket."""
    path = socket_path_of(engine_url)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise OrchestratorError(f"Cannot connect to the pynode daemon at {engine_url}: {exc}") from exc
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", creds)
    return int(pid)


def daemon_argv(engine_url: str, data_root: Path) -> list[str]:
    pid = engine_pid(engine_url)
    namespaces = [f"--net=/proc/{pid}/ns/net", f"--uts=/proc/{pid}/ns/uts"]
    return ["nsenter", *namespaces, "--", str(PYSWARM), "daemon", "--engine", engine_url,
            "--data-root", str(data_root)]


def spawn_daemon(engine_url: str, paths: SwarmPaths) -> int:
    """Start the node's daemon in its own session (it outlives the command), logging to swarm/daemon.log."""
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = daemon_argv(engine_url, paths.data_root)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(paths.log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawnp(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True)


def running_pid(paths: SwarmPaths) -> int | None:
    """The daemon's pid from its pidfile, if that process is alive and is this node's daemon."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    if stat.rsplit(")", 1)[1].split()[0] == "Z" or str(paths.data_root) not in cmdline or "daemon" not in cmdline:
        return None
    return pid


def write_pid_file(paths: SwarmPaths) -> None:
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.pid_file.write_text(f"{os.getpid()}\n")


def wait_for_socket(paths: SwarmPaths, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if paths.control_socket.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(str(paths.control_socket))
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise OrchestratorError(f"the swarm daemon did not start; see {paths.log_file}:\n{log_tail(paths)}")


def log_tail(paths: SwarmPaths, lines: int = 15) -> str:
    try:
        text = paths.log_file.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


def kill_daemon(paths: SwarmPaths, sig: signal.Signals = signal.SIGKILL, *, timeout: float = 10.0) -> bool:
    """Signal the node's daemon and wait for it to go; False if none was running."""
    pid = running_pid(paths)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(paths) == pid:
        time.sleep(0.02)
    return True
