"""A cluster on lab hosts for the whole module: h1-h3 managers, h4 a worker, heartbeats every second;
h5 starts outside the swarm (bad joins are tried from there) and joins later.

The lab is removed (namespaces, links, processes, files) even when a test fails, and the removal is
checked for leftovers, as tests/support/lab.py does for every lab.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator.client import ControlClient
from orchestrator.lab import Lab
from tests.support.lab import lab_spot


@dataclass
class Cluster:
    lab: Lab

    def swarm(self, host: str, *args: str, check: bool = True,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = self.lab.exec(host, "pyswarm", *args, timeout=timeout)
        if check:
            assert result.returncode == 0, (f"pyswarm {' '.join(args)} on {host}: {result.stderr}{result.stdout}"
                                            f"\n--- its swarm daemon's log, last lines:\n{self.daemon_log(host)}")
        return result

    def daemon_log(self, host: str, lines: int = 40) -> str:
        path = self.lab.host(host).data_root / "swarm" / "daemon.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(none)"

    def api(self, host: str) -> ControlClient:
        return ControlClient(self.lab.host(host).url)

    def tasks(self, host: str, service: str, *, running: bool = True) -> list[dict[str, Any]]:
        params = {"service": service}
        if running:
            params["desired_state"] = "running"
        return list(self.api(host).get("/tasks", params=params))

    def hostnames(self, host: str) -> dict[str, str]:
        return {n["ID"]: n["Description"]["Hostname"] for n in self.api(host).get("/nodes")}

    def placement(self, host: str, service: str) -> dict[str, int]:
        """Running tasks per hostname."""
        names = self.hostnames(host)
        counts: dict[str, int] = {}
        for task in self.tasks(host, service):
            if task["Status"]["State"] == "running":
                counts[names.get(task["NodeID"], "?")] = counts.get(names.get(task["NodeID"], "?"), 0) + 1
        return counts

    def leader(self, host: str) -> str:
        for node in self.api(host).get("/nodes"):
            if node.get("ManagerStatus", {}).get("Leader"):
                return str(node["Description"]["Hostname"])
        return ""

    def containers(self, host: str) -> list[str]:
        out = self.lab.exec(host, "pynode", "ps", "--format", "{{.Names}}").stdout
        return [line for line in out.splitlines() if line]


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.3, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - a manager may be between leaders; keep asking
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last {last!r}")


def form_cluster(lab: Lab, *, managers: tuple[str, ...], workers: tuple[str, ...]) -> Cluster:
    """busybox bootstrapped on every host at once, a swarm initialised on the first manager (1 s heartbeats),
    the other managers and the workers joined; returns once they all are ready."""
    procs = [subprocess.Popen(lab.exec_argv(h.name, "pynode", "image", "bootstrap", "busybox")[0],
                              env=lab.exec_argv(h.name, "true")[1], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for h in lab.hosts]
    assert all(p.wait(120) == 0 for p in procs)
    made = Cluster(lab)
    first, *others = managers
    addr = lab.host(first).address
    made.swarm(first, "init", "--advertise-addr", addr, "--dispatcher-heartbeat", "1s")
    manager_token = made.swarm(first, "join-token", "manager", "-q").stdout.strip()
    made.worker_token = made.swarm(first, "join-token", "worker", "-q").stdout.strip()  # type: ignore[attr-defined]
    for host in others:
        made.swarm(host, "join", "--token", manager_token, f"{addr}:2377")
    for host in workers:
        made.swarm(host, "join", "--token", made.worker_token, f"{addr}:2377")  # type: ignore[attr-defined]
    count = len(managers) + len(workers)
    wait_for(lambda: len([n for n in made.api(first).get("/nodes") if n["Status"]["State"] == "ready"]) == count,
             what=f"{count} ready nodes")
    return made


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """h1-h3 managers, h4 a worker; h5 stays outside the swarm."""
    with lab_spot() as spot:
        yield form_cluster(spot.up(5), managers=("h1", "h2", "h3"), workers=("h4",))
