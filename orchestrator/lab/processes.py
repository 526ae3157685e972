"""The lab's processes: each host's `pynode daemon`, started inside the host's network and UTS
namespaces, and the sweeps `lab down` uses to find everything that still runs or is mounted there.

Daemons are spawned with `os.posix_spawn` in a session of their own, so they outlive the `pyswarm lab`
command that started them; liveness is checked against /proc (pid alive, not a zombie, its command
line naming the host's socket), never trusted from a pid alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from node.client import EngineClient
from node.runtime.cgroups import Cgroups, detect_layout
from orchestrator.lab.errors import LabError
from orchestrator.lab.hosts import is_mount_point, mount_points
from orchestrator.lab.state import LabHost

MNT_DETACH = 2


def nsenter_argv(host: LabHost, cmd: Iterable[str]) -> list[str]:
    """argv running `cmd` in the host's network and UTS namespaces (the mount namespace is the machine's)."""
    uts = [f"--uts={host.uts_path}"] if is_mount_point(host.uts_path) else []
    return ["nsenter", f"--net={host.netns_path}", *uts, "--", *cmd]


def host_env(host: LabHost, *, venv_bin: Path) -> dict[str, str]:
    """The environment of a command on `host`: its engine's socket, and our commands on PATH."""
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {**os.environ, "PYNODE_HOST": host.url, "PATH": f"{venv_bin}:{path}"}


def spawn_daemon(host: LabHost, *, pynode: Path) -> int:
    """Start the host's `pynode daemon` (its own data root, exec root, socket, log); returns its pid."""
    host.base.mkdir(parents=True, exist_ok=True)
    argv = nsenter_argv(host, [
        str(pynode), "-H", host.url, "daemon", "--data-root", str(host.data_root),
        "--exec-root", str(host.exec_root), "--config-file", str(host.config_file),
    ])
    log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(host.log_path), log_flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    env = host_env(host, venv_bin=pynode.parent)
    return os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)


def is_running(pid: int | None, host: LabHost) -> bool:
    """True while `pid` is the host's daemon: alive, not a zombie, its command line naming the socket."""
    if pid is None:
        return False
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and str(host.socket) in cmdline


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie; others' children are not ours."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_ready(host: LabHost, pid: int, *, deadline: float) -> None:
    """Block until the host's engine answers /_ping; a daemon that exits first is an error with its log."""
    with EngineClient(host.url, timeout=5) as client:
        while time.monotonic() < deadline:
            if not is_running(pid, host):
                raise LabError(f"{host.name}: pynode daemon exited at start:\n{log_tail(host)}")
            if client.ping():
                return
            time.sleep(0.05)
    raise LabError(f"{host.name}: pynode daemon did not answer on {host.socket} in time:\n{log_tail(host)}")


def log_tail(host: LabHost, lines: int = 15) -> str:
    try:
        text = host.log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


def signal_and_wait(pid: int, sig: signal.Signals, *, host: LabHost, timeout: float) -> bool:
    """Send `sig` to the host's daemon and wait for it to go; False if it is still there."""
    if not is_running(pid, host):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid, host):
            return True
        time.sleep(0.02)
    return False


def stop_daemon(pid: int | None, host: LabHost, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`."""
    if pid is None:
        return
    if not signal_and_wait(pid, signal.SIGTERM, host=host, timeout=timeout):
        signal_and_wait(pid, signal.SIGKILL, host=host, timeout=5.0)


def remove_containers(host: LabHost, *, timeout: float = 10.0) -> None:
    """Best effort: ask the host's engine to force-remove its containers, so it cleans its own state."""
    with EngineClient(host.url, timeout=timeout) as client:
        if not client.ping():
            return
        try:
            containers = client.get("/containers/json", params={"all": "1"})
            for container in containers:
                client.delete(f"/containers/{container['Id']}", params={"force": "1", "v": "1"})
        except Exception:  # noqa: BLE001 - an engine without the containers API; the sweep follows
            return


def sandboxes(host: LabHost) -> list[Path]:
    """The network namespaces the host's engine made for its containers (bind-mounted under its exec root)."""
    directory = host.exec_root / "netns"
    try:
        return sorted(p for p in directory.iterdir())
    except OSError:
        return []


def container_ids(host: LabHost) -> list[str]:
    """Every container the host's engine holds on disk (running or not)."""
    try:
        return sorted(p.name for p in (host.data_root / "containers").iterdir() if p.is_dir())
    except OSError:
        return []


def remove_cgroups(ids: Iterable[str]) -> None:
    """The containers' cgroups (`/pynode/<id>` in every hierarchy), left when their engine died."""
    cgroups = Cgroups(detect_layout()[0])
    for cid in ids:
        cgroups.remove(f"/pynode/{cid}")


def find_pids(*, netns_paths: Iterable[Path], paths: Iterable[Path], container_ids: Iterable[str] = ()) -> list[int]:
    """Processes in one of the network namespaces, in one of the containers' cgroups, or whose root, cwd or
    command line is under a path."""
    inodes = set()
    for ns_path in netns_paths:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(ns_path).st_ino)
    prefixes = [str(p) for p in paths]
    cgroups = {f"/pynode/{cid}" for cid in container_ids}
    spared = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in spared and (
                _belongs(int(entry), inodes, prefixes) or _in_cgroups(int(entry), cgroups)):
            found.append(int(entry))
    return found


def _in_cgroups(pid: int, cgroups: set[str]) -> bool:
    if not cgroups:
        return False
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    for line in lines:  # "4:memory:/pynode/<id>", "0::/pynode/<id>/..."
        path = line.split(":", 2)[-1]
        if "/".join(path.split("/")[:3]) in cgroups:
            return True
    return False


def _ancestors() -> set[int]:
    """This process and its parents: a sweep never kills the command (or shell) that runs it."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def _belongs(pid: int, inodes: set[int], prefixes: list[str]) -> bool:
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
            return True
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
        places = [os.readlink(f"/proc/{pid}/root"), os.readlink(f"/proc/{pid}/cwd")]
    except OSError:
        return False
    return any(p in cmdline or any(place.startswith(p) for place in places) for p in prefixes)


def kill_all(*, netns_paths: list[Path], paths: list[Path], container_ids: Iterable[str] = (),
             timeout: float = 10.0) -> list[int]:
    """SIGKILL every process `find_pids` finds until none is left; returns the survivors (normally none)."""
    deadline = time.monotonic() + timeout
    ids = list(container_ids)
    while True:
        pids = [pid for pid in find_pids(netns_paths=netns_paths, paths=paths, container_ids=ids)
                if not _is_zombie(pid)]
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
        time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    _reap(pid)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def unmount_under(paths: Iterable[Path]) -> list[str]:
    """Lazily unmount every mount at or under one of `paths`, deepest first; returns what failed."""
    prefixes = [str(p) for p in paths]
    targets = [m for m in mount_points() if any(m == p or m.startswith(p + "/") for p in prefixes)]
    libc = ctypes.CDLL(None, use_errno=True)
    failed = []
    for target in sorted(set(targets), key=len, reverse=True):
        if libc.umount2(target.encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            failed.append(f"{target}: {os.strerror(err)}")
    return failed
