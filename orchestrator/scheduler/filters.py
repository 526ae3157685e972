"""Scheduling filters: small objects that accept or refuse a node for a task and explain refusals.

A `Pipeline` runs them in order; a node counts against the first filter that refuses it, and
`explain()` lists the counts, most frequent first: "2 nodes lacked memory; 1 node is drained".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from orchestrator.model import NodeAvailability, NodeStatus, PortProtocol, Task
from orchestrator.scheduler.constraint import Constraint, parse_constraints
from orchestrator.scheduler.nodeinfo import NodeInfo, host_ports


class Filter(Protocol):
    """A filter may set a class attribute `dynamic = True` when its answer depends on what the
    node already runs (resources, ports, counts); the others must depend only on the node and the
    task's constraints, so that one pass can reuse their answers across services."""

    def set_task(self, task: Task) -> bool:
        """Prepare for `task`; False: this filter does not apply to it."""
        ...

    def check(self, node: NodeInfo) -> bool: ...

    def explain(self, failures: int) -> str:
        """Why `failures` nodes were refused, e.g. "2 nodes lacked memory"."""
        ...


def nodes(count: int, singular: str, plural: str) -> str:
    return f"1 node {singular}" if count == 1 else f"{count} nodes {plural}"


class ReadyFilter:
    """Only nodes whose agent reports ready."""

    def set_task(self, task: Task) -> bool:
        return True

    def check(self, node: NodeInfo) -> bool:
        return node.node.status is NodeStatus.READY

    def explain(self, failures: int) -> str:
        return nodes(failures, "is not ready", "are not ready")


class AvailabilityFilter:
    """Only nodes with the given availability refused: drained and paused nodes get nothing new."""

    def __init__(self, refused: NodeAvailability) -> None:
        self._refused = refused
        self._word = {NodeAvailability.DRAIN: "drained", NodeAvailability.PAUSE: "paused"}.get(refused, refused.value)

    def set_task(self, task: Task) -> bool:
        return True

    def check(self, node: NodeInfo) -> bool:
        return node.node.availability is not self._refused

    def explain(self, failures: int) -> str:
        return nodes(failures, f"is {self._word}", f"are {self._word}")


class ConstraintFilter:
    """The task's placement constraints (parse them first with `parse_constraints`)."""

    def __init__(self) -> None:
        self._constraints: tuple[Constraint, ...] = ()

    def set_task(self, task: Task) -> bool:
        self._constraints = parse_constraints(task.spec.placement.constraints)
        return bool(self._constraints)

    def check(self, node: NodeInfo) -> bool:
        return all(c.matches(node.node) for c in self._constraints)

    def explain(self, failures: int) -> str:
        return nodes(failures, "did not satisfy the constraints", "did not satisfy the constraints")


class MaxReplicasFilter:
    """`placement.max_replicas`: at most that many tasks of the service per node."""

    dynamic = True

    def __init__(self) -> None:
        self._service = ""
        self._max = 0

    def set_task(self, task: Task) -> bool:
        self._service, self._max = task.service_id, task.spec.placement.max_replicas
        return self._max > 0

    def check(self, node: NodeInfo) -> bool:
        return node.tasks_by_service[self._service] < self._max

    def explain(self, failures: int) -> str:
        return nodes(failures, "already ran the maximum replicas per node", "already ran the maximum replicas per node")


class MemoryFilter:
    """Reserved memory against the node's memory minus what its tasks reserve."""

    dynamic = True

    def __init__(self) -> None:
        self._wanted = 0

    def set_task(self, task: Task) -> bool:
        self._wanted = task.spec.resources.reservations.memory_bytes
        return self._wanted > 0

    def check(self, node: NodeInfo) -> bool:
        return node.available.memory_bytes >= self._wanted

    def explain(self, failures: int) -> str:
        return nodes(failures, "lacked memory", "lacked memory")


class CpuFilter:
    """Reserved CPUs (nano CPUs) against the node's CPUs minus what its tasks reserve."""

    dynamic = True

    def __init__(self) -> None:
        self._wanted = 0

    def set_task(self, task: Task) -> bool:
        self._wanted = task.spec.resources.reservations.nano_cpus
        return self._wanted > 0

    def check(self, node: NodeInfo) -> bool:
        return node.available.nano_cpus >= self._wanted

    def explain(self, failures: int) -> str:
        return nodes(failures, "lacked CPU", "lacked CPU")


class HostPortFilter:
    """Ports published in host mode must be free on the node."""

    dynamic = True

    def __init__(self) -> None:
        self._ports: list[tuple[PortProtocol, int]] = []

    def set_task(self, task: Task) -> bool:
        self._ports = host_ports(task)
        return bool(self._ports)

    def check(self, node: NodeInfo) -> bool:
        return not any(p in node.used_host_ports for p in self._ports)

    def explain(self, failures: int) -> str:
        ports = ", ".join(f"{port}/{proto.value}" for proto, port in self._ports)
        return nodes(failures, f"had host port {ports} in use", f"had host port {ports} in use")


def default_filters() -> list[Filter]:
    return [
        ReadyFilter(),
        AvailabilityFilter(NodeAvailability.DRAIN),
        AvailabilityFilter(NodeAvailability.PAUSE),
        ConstraintFilter(),
        MaxReplicasFilter(),
        MemoryFilter(),
        CpuFilter(),
        HostPortFilter(),
    ]


class Pipeline:
    """The filters that apply to one task; counts refusals per filter for `explain()`."""

    def __init__(self, filters: Sequence[Filter] | None = None) -> None:
        self._filters = list(filters) if filters is not None else default_filters()
        self._active: list[Filter] = []
        self._static: list[Filter] = []
        self._dynamic: list[Filter] = []
        self._failures: list[int] = []

    def set_task(self, task: Task) -> None:
        self._active = [f for f in self._filters if f.set_task(task)]
        self._failures = [0] * len(self._active)
        self._static = [f for f in self._active if not getattr(f, "dynamic", False)]
        self._dynamic = [f for f in self._active if getattr(f, "dynamic", False)]

    def accepts(self, node: NodeInfo) -> bool:
        """Whether every active filter accepts `node` (no counting)."""
        for f in self._active:
            if not f.check(node):
                return False
        return True

    def accepts_static(self, node: NodeInfo) -> bool:
        """The filters that look only at the node and the task's constraints."""
        for f in self._static:
            if not f.check(node):
                return False
        return True

    def accepts_dynamic(self, node: NodeInfo) -> bool:
        """The filters that look at what the node already runs."""
        for f in self._dynamic:
            if not f.check(node):
                return False
        return True

    def process(self, node: NodeInfo) -> bool:
        """Like `accepts`, but count the refusal against the first filter that refuses."""
        for i, f in enumerate(self._active):
            if not f.check(node):
                self._failures[i] += 1
                return False
        return True

    def explain(self) -> str:
        counted = [(n, i) for i, n in enumerate(self._failures) if n]
        counted.sort(key=lambda item: (-item[0], item[1]))
        reasons = "; ".join(self._active[i].explain(n) for n, i in counted)
        return f"no suitable node ({reasons})" if reasons else "no suitable node"
