"""Benchmark: the scheduling function on simulated clusters. Prints a table; not a test.

Usage: .venv/bin/python bench/scheduler.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from dataclasses import dataclass

from orchestrator.model import (
    ContainerSpec,
    Node,
    NodeAvailability,
    NodeRole,
    NodeStatus,
    Placement,
    PlacementPreference,
    ResourceRequirements,
    Resources,
    Task,
    TaskSpec,
)
from orchestrator.scheduler import build_node_infos, schedule

GIB = 1 << 30
REPLICAS_PER_SERVICE = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    nodes: int
    tasks: int


def make_nodes(count: int, rng: random.Random) -> list[Node]:
    return [
        Node(
            id=f"node{i:05d}",
            hostname=f"host{i}",
            role=NodeRole.MANAGER if i < 3 else NodeRole.WORKER,
            status=NodeStatus.READY if rng.random() > 0.01 else NodeStatus.DOWN,
            availability=NodeAvailability.DRAIN if rng.random() < 0.02 else NodeAvailability.ACTIVE,
            labels={"zone": f"z{i % 3}", "rack": f"r{i % 20}"},
            resources=Resources(nano_cpus=16_000_000_000, memory_bytes=64 * GIB),
        )
        for i in range(count)
    ]


def make_spec(service: int) -> TaskSpec:
    """A mix: plain, reserving, constrained, and zone-spread services."""
    kind = service % 4
    placement = Placement()
    resources = ResourceRequirements()
    if kind == 1:
        resources = ResourceRequirements(reservations=Resources(memory_bytes=256 << 20, nano_cpus=100_000_000))
    elif kind == 2:
        placement = Placement(constraints=("node.role==worker", "node.labels.zone!=z0"))
    elif kind == 3:
        placement = Placement(preferences=(PlacementPreference(spread="node.labels.zone"),))
    return TaskSpec(container=ContainerSpec(image=f"app{service}"), placement=placement, resources=resources)


def make_tasks(count: int) -> list[Task]:
    tasks = []
    for service in range(count // REPLICAS_PER_SERVICE):
        spec = make_spec(service)
        tasks.extend(
            Task(id=f"s{service}.{slot}", service_id=f"s{service}", slot=slot, spec=spec)
            for slot in range(REPLICAS_PER_SERVICE)
        )
    return tasks


def run(case: Case) -> tuple[float, int, int, int, int]:
    rng = random.Random(42)
    infos = build_node_infos(make_nodes(case.nodes, rng), ())
    tasks = make_tasks(case.tasks)
    start = time.perf_counter()
    decisions = schedule(infos, tasks)
    elapsed = time.perf_counter() - start
    per_node = Counter(a.node_id for a in decisions.assignments)
    return (
        elapsed,
        len(decisions.assignments),
        len(decisions.unschedulable),
        min(per_node.values()),
        max(per_node.values()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the 1,000 x 30,000 case")
    args = parser.parse_args()
    cases = [Case(nodes=1_000, tasks=30_000)]
    if not args.quick:
        cases.append(Case(nodes=5_000, tasks=100_000))
    print(f"{'nodes':>7} {'tasks':>8} {'seconds':>8} {'tasks/s':>9} {'placed':>8} {'pending':>8} {'per node':>9}")
    for case in cases:
        elapsed, placed, pending, low, high = run(case)
        print(
            f"{case.nodes:>7,} {case.tasks:>8,} {elapsed:>8.2f} {case.tasks / elapsed:>9,.0f}"
            f" {placed:>8,} {pending:>8,} {f'{low}-{high}':>9}"
        )


if __name__ == "__main__":
    main()
