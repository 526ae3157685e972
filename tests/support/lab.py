"""Throwaway labs for tests: a unique name and subnet and a state root of their own per lab, removed
afterwards even when the test fails, then checked for leftovers (like pyroute2's netns fixtures).

    with lab_spot() as spot:          # what tests/orchestrator/lab's `lab_spot` fixture does
        lab = spot.up(5)              # five hosts h1..h5, each with its own engine
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.lab import Lab
from orchestrator.lab.hosts import find_overlaps

PYSWARM = str(Path(sys.executable).parent / "pyswarm")


@dataclass(frozen=True)
class LabSpot:
    """Where a test's lab goes: a name, a subnet nobody uses, a state root of its own."""

    name: str
    subnet: str
    state_root: Path

    def up(self, n: int) -> Lab:
        return Lab.up(n, name=self.name, subnet=self.subnet, state_dir=self.state_root)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`pyswarm lab ARGS` for this lab (name and state dir through the environment)."""
        env = {**os.environ, "PYSWARM_LAB": self.name, "PYSWARM_LAB_STATE_DIR": str(self.state_root)}
        return subprocess.run([PYSWARM, "lab", *args], env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def leftovers(self, container_ids: list[str] | None = None) -> list[str]:
        return find_leftovers(self.name, self.state_root / self.name, container_ids=container_ids or [])

    def container_ids(self) -> list[str]:
        """Every container the lab's engines hold on disk (to check their processes and cgroups are gone)."""
        return sorted(p.name for p in (self.state_root / self.name).glob("*/root/containers/*") if p.is_dir())


def unique_subnet() -> str:
    for _ in range(50):
        subnet = f"10.{secrets.choice(range(77, 255))}.{secrets.randbelow(256)}.0/24"
        if not find_overlaps(subnet):
            return subnet
    raise RuntimeError("no free 10.x.y.0/24 subnet found")


def find_leftovers(name: str, lab_dir: Path, *, container_ids: list[str] | None = None) -> list[str]:
    """Everything of lab `name` still on this machine: namespaces, links, processes, mounts, files, and the
    cgroups (and their processes) of the containers its engines held."""
    found = [f"netns {ns}" for ns in _lines(["ip", "netns", "list"]) if ns.split()[0].startswith(f"{name}-")]
    found += [f"link {link}" for link in _lines(["ip", "-o", "link"]) if f": {name}-" in link]
    found += [f"mount {m}" for m in Path("/proc/mounts").read_text().splitlines() if str(lab_dir) in m]
    found += [f"file {p}" for p in Path("/run").glob(f"pynode-{name}-*")]
    if lab_dir.exists():
        found.append(f"state dir {lab_dir}")
    for cid in container_ids or []:
        found += [f"cgroup {d}" for d in Path("/sys/fs/cgroup").glob(f"*/pynode/{cid}")]
        found += [f"cgroup {d}" for d in Path("/sys/fs/cgroup").glob(f"pynode/{cid}")]
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (str(lab_dir) in cmdline or f"pynode-{name}-" in cmdline) and "pytest" not in cmdline:
            found.append(f"process {pid_dir.name}: {cmdline[:100]}")
    return found


def _lines(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


@contextmanager
def lab_spot() -> Iterator[LabSpot]:
    """A name, subnet and state root for one lab; whatever was made there is removed on the way out,
    and anything left after that fails the caller with the list."""
    root = Path(tempfile.mkdtemp(prefix="plab", dir="/tmp"))
    spot = LabSpot(name=f"l{secrets.token_hex(3)[:5]}", subnet=unique_subnet(), state_root=root)
    try:
        yield spot
    finally:
        containers = spot.container_ids()
        Lab.remove(name=spot.name, state_dir=root)
        leaked = spot.leftovers(containers)
        shutil.rmtree(root, ignore_errors=True)
    assert not leaked, f"lab {spot.name} left: {leaked}"
