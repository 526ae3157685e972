"""Time from `pyswarm stack deploy` of a 10-service compose app to every service running and healthy, on a
lab cluster; then `stack rm` to every host clean (no task container, no overlay device left).

    .venv/bin/python bench/stack_deploy.py [--hosts 3] [--services 10] [--runs 3]

A throwaway lab (its own name, subnet and state root; removed afterwards): one manager, the rest workers,
busybox bootstrapped on each. The app: N busybox httpd services on the stack's overlay, each with a
healthcheck (interval 1 s), the second half depending on the first (`depends_on: service_healthy`), so the
figure includes the dependency gate. Prints the median of the runs and each run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests/

from bench.converge import form_swarm, swarm  # noqa: E402
from orchestrator.client import ControlClient  # noqa: E402
from orchestrator.lab import Lab  # noqa: E402
from tests.support.lab import lab_spot  # noqa: E402


def compose_file(services: int) -> str:
    half = services // 2
    lines = ["services:"]
    for i in range(services):
        lines += [f"  s{i}:", "    image: busybox", "    init: true",
                  "    command: sh -c 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'",
                  "    healthcheck:", '      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]',
                  "      interval: 1s", "      retries: 30"]
        if i >= half:
            lines += ["    depends_on:", f"      s{i - half}: {{condition: service_healthy}}"]
    return "\n".join(lines) + "\n"


def healthy(client: ControlClient, stack: str, services: int) -> bool:
    found = [s for s in client.get("/services") if s["Spec"]["Name"].startswith(f"{stack}_")]
    return len(found) == services and all(s["ServiceStatus"]["RunningTasks"] == 1 for s in found)


def clean(lab: Lab) -> bool:
    for host in lab.hosts:
        if lab.exec(host.name, "pynode", "ps", "-q").stdout.strip():
            return False
        links = lab.exec(host.name, "ip", "-o", "link").stdout.splitlines()
        if any(": vx-" in line or ": ov-" in line for line in links):
            return False
    return True


def wait(check: object, *, timeout: float = 300.0) -> float:
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise TimeoutError("not reached in time")
        time.sleep(0.1)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ups, downs = [], []
    with lab_spot() as spot, tempfile.TemporaryDirectory() as tmp:
        lab = spot.up(args.hosts)
        client = form_swarm(lab)
        path = Path(tmp) / "compose.yaml"
        path.write_text(compose_file(args.services))
        for run in range(args.runs):
            stack = f"b{run}"
            start = time.monotonic()
            swarm(lab, "h1", "stack", "deploy", "-c", str(path), stack)
            wait(lambda stack=stack: healthy(client, stack, args.services))
            ups.append(time.monotonic() - start)
            start = time.monotonic()
            swarm(lab, "h1", "stack", "rm", stack)
            wait(lambda: clean(lab))
            downs.append(time.monotonic() - start)
    print(f"{'what':<58} {'median s':>9}  runs")
    print(f"{f'stack deploy of {args.services} services -> all healthy':<58} {statistics.median(ups):>9.2f}  "
          + " ".join(f"{t:.2f}" for t in ups))
    print(f"{'stack rm -> no task or overlay device on any host':<58} {statistics.median(downs):>9.2f}  "
          + " ".join(f"{t:.2f}" for t in downs))
    print(f"({args.hosts} lab hosts, one manager; half the services wait for the other half to be healthy; "
          "times include the pyswarm command itself)")


if __name__ == "__main__":
    main()
