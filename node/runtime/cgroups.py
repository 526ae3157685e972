"""cgroup layout detection and the few cgroup files the engine reads or writes itself.

Layouts: `v1` (controllers each in their own hierarchy), `hybrid` (v1 controllers plus a cgroup2 side
mount, e.g. /sys/fs/cgroup/unified; crun 1.8 refuses to run there) and `unified` (cgroup v2 only).
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices", "blkio", "hugetlb",
                  "net_cls", "net_prio", "perf_event", "systemd")


class CgroupLayout(enum.Enum):
    V1 = "v1"
    HYBRID = "hybrid"
    UNIFIED = "unified"


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str
    options: str


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if "-" not in parts:
            continue
        sep = parts.index("-")
        options = parts[sep + 3] if len(parts) > sep + 3 else ""
        mounts.append(Mount(point=parts[4], fstype=parts[sep + 1], options=options))
    return mounts


def classify_layout(mounts: Iterable[Mount]) -> tuple[CgroupLayout, tuple[str, ...]]:
    """Pure: the layout, and for `hybrid` the cgroup2 side mounts a runtime must not see."""
    mounts = list(mounts)
    if any(m.point == str(CGROUP_ROOT) and m.fstype == "cgroup2" for m in mounts):
        return CgroupLayout.UNIFIED, ()
    side = tuple(m.point for m in mounts if m.fstype == "cgroup2")
    has_v1 = any(m.fstype == "cgroup" for m in mounts)
    if has_v1 and side:
        return CgroupLayout.HYBRID, side
    return (CgroupLayout.V1 if has_v1 else CgroupLayout.UNIFIED), ()


def detect_layout() -> tuple[CgroupLayout, tuple[str, ...]]:
    with open("/proc/self/mountinfo") as fh:
        return classify_layout(parse_mountinfo(fh.read()))


@dataclass(frozen=True, slots=True, kw_only=True)
class CgroupStats:
    memory_usage: int = 0
    memory_limit: int = 0
    memory_max_usage: int = 0
    cpu_usage_ns: int = 0
    pids_current: int = 0
    pids_limit: int = 0
    oom_kills: int = 0
    read_at: float = 0.0


class Cgroups:
    """Reads and edits one container's cgroup (`/pynode/<id>`) under the detected layout."""

    def __init__(self, layout: CgroupLayout, *, root: Path = CGROUP_ROOT) -> None:
        self.layout = layout
        self.root = root

    def _v1(self, controller: str, path: str) -> Path:
        return self.root / controller / path.lstrip("/")

    def _v2(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def stats(self, path: str) -> CgroupStats:
        if self.layout is CgroupLayout.UNIFIED:
            return self._stats_v2(path)
        mem = self._v1("memory", path)
        return CgroupStats(
            memory_usage=_read_int(mem / "memory.usage_in_bytes"),
            memory_limit=_read_int(mem / "memory.limit_in_bytes"),
            memory_max_usage=_read_int(mem / "memory.max_usage_in_bytes"),
            cpu_usage_ns=_read_int(self._v1("cpuacct", path) / "cpuacct.usage"),
            pids_current=_read_int(self._v1("pids", path) / "pids.current"),
            pids_limit=_read_int(self._v1("pids", path) / "pids.max"),
            oom_kills=self.oom_kills(path),
            read_at=time.time(),
        )

    def _stats_v2(self, path: str) -> CgroupStats:
        base = self._v2(path)
        cpu = _read_keyed(base / "cpu.stat")
        return CgroupStats(
            memory_usage=_read_int(base / "memory.current"),
            memory_limit=_read_int(base / "memory.max"),
            memory_max_usage=_read_int(base / "memory.peak"),
            cpu_usage_ns=cpu.get("usage_usec", 0) * 1000,
            pids_current=_read_int(base / "pids.current"),
            pids_limit=_read_int(base / "pids.max"),
            oom_kills=self.oom_kills(path),
            read_at=time.time(),
        )

    def oom_kills(self, path: str) -> int:
        if self.layout is CgroupLayout.UNIFIED:
            return _read_keyed(self._v2(path) / "memory.events").get("oom_kill", 0)
        return _read_keyed(self._v1("memory", path) / "memory.oom_control").get("oom_kill", 0)

    def freeze(self, path: str, frozen: bool) -> None:
        if self.layout is CgroupLayout.UNIFIED:
            (self._v2(path) / "cgroup.freeze").write_text("1" if frozen else "0")
            return
        state = self._v1("freezer", path) / "freezer.state"
        state.write_text("FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + 5
        want = "FROZEN" if frozen else "THAWED"
        while state.read_text().strip() != want and time.monotonic() < deadline:
            time.sleep(0.005)

    def pids(self, path: str) -> list[int]:
        procs = self._v2(path) if self.layout is CgroupLayout.UNIFIED else self._v1("pids", path)
        try:
            return [int(p) for p in (procs / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def leftover_dirs(self, path: str) -> list[Path]:
        candidates = [self._v2(path)] if self.layout is CgroupLayout.UNIFIED else \
            [self._v1(c, path) for c in V1_CONTROLLERS]
        return [p for p in candidates if p.is_dir()]

    def remove(self, path: str) -> None:
        """rmdir every hierarchy's directory for `path` (the runtime's delete normally did it already)."""
        for directory in self.leftover_dirs(path):
            for sub in sorted((d for d in directory.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                _rmdir(sub)
            _rmdir(directory)


def _rmdir(path: Path) -> None:
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _read_int(path: Path) -> int:
    try:
        raw = path.read_text().strip()
    except OSError:
        return 0
    if raw == "max":
        return 0
    try:
        return int(raw)
    except ValueError:
        return 0


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out
