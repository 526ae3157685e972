"""Time from `pyswarm service create --replicas N` to N running tasks on a lab cluster.

    .venv/bin/python bench/converge.py [--hosts 5] [--replicas 100]

Makes a throwaway lab (its own name, subnet and state root; removed afterwards), one manager and
the rest workers, busybox bootstrapped on each host; prints a table: create -> all running, then
scale N -> 2N. Docker Swarm measured on this machine with one node: 50 replicas in 14.7 s, 50 -> 100
in 14.3 s. Target here: 100 replicas running in under 5 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests/

from orchestrator.client import ControlClient  # noqa: E402
from orchestrator.lab import Lab  # noqa: E402
from tests.support.lab import lab_spot  # noqa: E402


def running(client: ControlClient, service: str) -> int:
    tasks = client.get("/tasks", params={"service": service, "desired_state": "running"})
    return sum(1 for t in tasks if t["Status"]["State"] == "running")


def wait_running(client: ControlClient, service: str, count: int, timeout: float = 300.0) -> float:
    start = time.monotonic()
    while running(client, service) < count:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{service}: fewer than {count} running after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def swarm(lab: Lab, host: str, *args: str) -> str:
    result = lab.exec(host, "pyswarm", *args)
    if result.returncode:
        raise RuntimeError(f"pyswarm {' '.join(args)}: {result.stderr}")
    return result.stdout


def form_swarm(lab: Lab) -> ControlClient:
    """busybox on every host, h1 the one manager, the others workers; a client of h1's control API."""
    procs = [subprocess.Popen(lab.exec_argv(h.name, "pynode", "image", "bootstrap", "busybox")[0],
                              env=lab.exec_argv(h.name, "true")[1], stdout=subprocess.DEVNULL) for h in lab.hosts]
    for proc in procs:
        proc.wait()
    addr = lab.host("h1").address
    swarm(lab, "h1", "init", "--advertise-addr", addr)
    token = swarm(lab, "h1", "join-token", "worker", "-q").strip()
    for host in lab.hosts[1:]:
        swarm(lab, host.name, "join", "--token", token, f"{addr}:2377")
    return ControlClient(lab.host("h1").url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=100)
    args = parser.parse_args()
    with lab_spot() as spot:
        lab = spot.up(args.hosts)
        client = form_swarm(lab)
        rows = []
        start = time.monotonic()
        swarm(lab, "h1", "service", "create", "--name", "bench", "--replicas", str(args.replicas),
              "busybox", "sleep", "100000")
        wait_running(client, "bench", args.replicas)
        rows.append((f"create --replicas {args.replicas} -> all running", time.monotonic() - start))
        start = time.monotonic()
        swarm(lab, "h1", "service", "scale", f"bench={2 * args.replicas}")
        wait_running(client, "bench", 2 * args.replicas)
        rows.append((f"scale {args.replicas} -> {2 * args.replicas}", time.monotonic() - start))
        swarm(lab, "h1", "service", "rm", "bench")
    print(f"{'what':<45} {'seconds':>8}")
    for what, seconds in rows:
        print(f"{what:<45} {seconds:>8.2f}")
    print(f"({args.hosts} lab hosts, one manager; times include the pyswarm command itself)")


if __name__ == "__main__":
    main()
