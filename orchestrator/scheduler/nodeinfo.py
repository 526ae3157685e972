"""What the scheduler knows of a node: the node, its active tasks, and what is left of it."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orchestrator.model import Node, PortProtocol, PublishMode, Resources, Task, TaskState


def is_task_active(task: Task) -> bool:
    """A task that holds (or is about to hold) its node's resources."""
    return task.desired_state <= TaskState.RUNNING and task.status.state <= TaskState.RUNNING


def host_ports(task: Task) -> list[tuple[PortProtocol, int]]:
    return [
        (p.protocol, p.published_port) for p in task.ports if p.publish_mode is PublishMode.HOST and p.published_port
    ]


@dataclass(slots=True, kw_only=True)
class NodeInfo:
    """Mutable while one scheduling pass runs (`schedule` works on copies)."""

    node: Node
    tasks: dict[str, Task] = field(default_factory=dict)
    available: Resources = field(default_factory=Resources)
    tasks_by_service: Counter[str] = field(default_factory=Counter)
    used_host_ports: set[tuple[PortProtocol, int]] = field(default_factory=set)

    @classmethod
    def build(cls, node: Node, tasks: Iterable[Task] = ()) -> NodeInfo:
        info = cls(node=node, available=node.resources)
        for task in tasks:
            if is_task_active(task):
                info.add_task(task)
        return info

    def add_task(self, task: Task) -> None:
        if task.id in self.tasks:
            return
        self.tasks[task.id] = task
        self.tasks_by_service[task.service_id] += 1
        reserved = task.spec.resources.reservations
        if reserved.memory_bytes or reserved.nano_cpus:
            self.available = Resources(
                nano_cpus=self.available.nano_cpus - reserved.nano_cpus,
                memory_bytes=self.available.memory_bytes - reserved.memory_bytes,
            )
        if task.ports:
            self.used_host_ports.update(host_ports(task))

    def copy(self) -> NodeInfo:
        return NodeInfo(
            node=self.node,
            tasks=dict(self.tasks),
            available=self.available,
            tasks_by_service=Counter(self.tasks_by_service),
            used_host_ports=set(self.used_host_ports),
        )


def build_node_infos(nodes: Sequence[Node], tasks: Iterable[Task]) -> list[NodeInfo]:
    """NodeInfo for every node, from all the tasks the store holds (inactive ones are skipped)."""
    by_node: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        if task.node_id is not None:
            by_node[task.node_id].append(task)
    return [NodeInfo.build(node, by_node.get(node.id, ())) for node in nodes]
