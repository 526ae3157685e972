"""Network namespaces kept alive as bind-mounted nsfs files (sandboxes), and code run inside them.

A sandbox is `<exec-root>/netns/<container_id>`: an empty file with the namespace's nsfs bind-mounted on
it, so `ip netns list` (which reads /run/netns) never sees ours. Work inside a namespace runs in a
short-lived helper thread that `setns()`s itself into it: sockets created there stay bound to that
namespace after the thread ends, and /proc/sys/net opened there is that namespace's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute

from node.errors import EngineFailure

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def create_namespace(path: Path) -> None:
    """Make a new network namespace pinned at `path` (an nsfs bind mount), loopback up. Idempotent."""
    if is_namespace(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    path.touch(exist_ok=True)
    result = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise EngineFailure(f"cannot create network namespace {path}: {result.stderr.strip()}")
    try:
        with IPRoute(netns=str(path)) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    except Exception:
        remove_namespace(path)
        raise


def remove_namespace(path: Path) -> None:
    """Unmount and unlink a pinned namespace; missing is fine."""
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise EngineFailure(f"cannot unmount {path}: {os.strerror(err)}")
    path.unlink(missing_ok=True)


def is_namespace(path: Path) -> bool:
    """True when `path` is a mounted nsfs file (not just the empty placeholder)."""
    target = str(path)
    try:
        with open("/proc/self/mounts") as fh:
            return any(line.split()[1] == target and line.split()[0] == "nsfs" for line in fh)
    except OSError:
        return False


def run_in_namespace(path: Path | None, func: Callable[[], T]) -> T:
    """Run `func` in a helper thread that has entered the namespace at `path` (None: the host's)."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            if path is not None:
                _enter(path)
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=body, name="netns-helper", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _enter(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise EngineFailure(f"cannot enter network namespace {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def write_sysctl(path: Path | None, key: str, value: str) -> None:
    """Set `net.ipv4.ip_forward`-style keys inside the namespace at `path` (None: the host's)."""
    proc_path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(proc_path, "w") as fh:
            fh.write(value)

    run_in_namespace(path, write)


def read_sysctl(path: Path | None, key: str) -> str:
    proc_path = "/proc/sys/" + key.replace(".", "/")

    def read() -> str:
        with open(proc_path) as fh:
            return fh.read().strip()

    return run_in_namespace(path, read)


def set_interface_sysctl(ifname: str, key: str, value: str) -> None:
    """`net.ipv4.conf.<ifname>.<key>` on the host (interface names may hold dots, so no key parsing)."""
    with open(f"/proc/sys/net/ipv4/conf/{ifname}/{key}", "w") as fh:
        fh.write(value)


# /proc/net/dev columns, receive then transmit, under Docker's stats names (its NetworkStats)
_NET_DEV_FIELDS = (
    "rx_bytes", "rx_packets", "rx_errors", "rx_dropped", None, None, None, None,
    "tx_bytes", "tx_packets", "tx_errors", "tx_dropped", None, None, None, None,
)


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """`/proc/net/dev` -> {ifname: {rx_bytes, rx_packets, rx_errors, rx_dropped, tx_...}}, loopback left out
    (Docker's stats report a container's interfaces, not its `lo`)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or len(values) < len(_NET_DEV_FIELDS) or name.strip() == "lo":
            continue
        out[name.strip()] = {key: int(v) for key, v in zip(_NET_DEV_FIELDS, values, strict=False) if key}
    return out


def interface_counters(pid: int) -> dict[str, dict[str, int]]:
    """The counters of every interface in the network namespace of process `pid` ({} if it is gone)."""
    try:
        with open(f"/proc/{pid}/net/dev") as fh:
            return parse_net_dev(fh.read())
    except (OSError, ValueError):
        return {}
