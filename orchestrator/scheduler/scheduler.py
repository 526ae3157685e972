"""The scheduler's decision: a pure function from a snapshot of nodes and tasks to assignments.

For each group of tasks that share a service and a spec, the filters run once over the nodes;
the nodes that pass go into a tree keyed by placement preferences (`spread=node.labels.zone`)
whose leaves are heaps keyed by (tasks of this service, tasks overall, node id). Each task takes
the best node, re-checked against the resources and ports that earlier placements used, and the
node goes back into its heap with its new counts: 6 replicas over 3 nodes spread 2/2/2, and a pass
costs O(nodes + tasks x log nodes) per group instead of a sort per task.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.model import Task, TaskState, TaskStatus
from orchestrator.scheduler.constraint import ConstraintError, node_attribute, parse_constraints, parse_spread
from orchestrator.scheduler.filters import Filter, Pipeline
from orchestrator.scheduler.nodeinfo import NodeInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    task_id: str
    node_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unschedulable:
    task_id: str
    reason: str  # "no suitable node (2 nodes lacked memory; 1 node is drained)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decisions:
    assignments: tuple[Assignment, ...] = ()
    unschedulable: tuple[Unschedulable, ...] = ()

    def node_of(self, task_id: str) -> str | None:
        for a in self.assignments:
            if a.task_id == task_id:
                return a.node_id
        return None


def schedule(nodes: Sequence[NodeInfo], tasks: Sequence[Task], *, filters: Sequence[Filter] | None = None) -> Decisions:
    """Place `tasks` (pending; a set `node_id` pins a task, as for global services) on `nodes`.

    Pure: `nodes` are copied, nothing is written. Tasks are taken in the order given.
    """
    state = _Pass(infos={info.node.id: info.copy() for info in nodes}, pipeline=Pipeline(filters))
    for group in _group_tasks(tasks):
        if group[0].node_id is not None:
            _schedule_pinned(group[0], state)
        else:
            _schedule_group(group, state)
    return Decisions(assignments=tuple(state.assignments), unschedulable=tuple(state.unschedulable))


@dataclass(slots=True, kw_only=True)
class _Pass:
    infos: dict[str, NodeInfo]
    pipeline: Pipeline
    assignments: list[Assignment] = dataclasses.field(default_factory=list)
    unschedulable: list[Unschedulable] = dataclasses.field(default_factory=list)
    static_ok: dict[tuple[str, ...], list[NodeInfo]] = dataclasses.field(default_factory=dict)

    def eligible(self, task: Task) -> list[NodeInfo]:
        """Nodes the static filters accept, computed once per set of constraints in this pass."""
        key = task.spec.placement.constraints
        found = self.static_ok.get(key)
        if found is None:
            found = self.static_ok[key] = [i for i in self.infos.values() if self.pipeline.accepts_static(i)]
        return found


def assign_task(task: Task, node_id: str, *, now: float) -> Task:
    """The task as the scheduler writes it to the store once assigned."""
    status = TaskStatus(state=TaskState.ASSIGNED, message="scheduler assigned task to node", timestamp=now)
    return dataclasses.replace(task, node_id=node_id, status=status)


def mark_unschedulable(task: Task, reason: str, *, now: float) -> Task:
    """The task left pending, with the reason in `status.err` (as `docker service ps` shows it)."""
    status = TaskStatus(state=TaskState.PENDING, message="pending task scheduling", err=reason, timestamp=now)
    return dataclasses.replace(task, status=status)


def _group_tasks(tasks: Sequence[Task]) -> list[list[Task]]:
    """Tasks of one service with one spec, in order of first appearance; pinned tasks alone."""
    groups: list[list[Task]] = []
    by_service: dict[str, list[list[Task]]] = {}
    for task in tasks:
        if task.node_id is not None:
            groups.append([task])
            continue
        candidates = by_service.setdefault(task.service_id, [])
        for group in candidates:
            if group[0].spec is task.spec or group[0].spec == task.spec:
                group.append(task)
                break
        else:
            group = [task]
            candidates.append(group)
            groups.append(group)
    return groups


def _prepare(task: Task, pipeline: Pipeline) -> tuple[str, ...] | str:
    """Set the pipeline for `task`; return its spread keys, or the error text when its placement is bad."""
    try:
        parse_constraints(task.spec.placement.constraints)
        spreads = tuple(parse_spread(p.spread) for p in task.spec.placement.preferences)
    except ConstraintError as exc:
        return str(exc)
    pipeline.set_task(task)
    return spreads


def _schedule_pinned(task: Task, state: _Pass) -> None:
    pipeline, assignments, unschedulable = state.pipeline, state.assignments, state.unschedulable
    prepared = _prepare(task, pipeline)
    info = state.infos.get(task.node_id or "")
    if isinstance(prepared, str):
        unschedulable.append(Unschedulable(task_id=task.id, reason=prepared))
    elif info is None:
        unschedulable.append(Unschedulable(task_id=task.id, reason=f"node {task.node_id} not found"))
    elif pipeline.process(info):
        info.add_task(task)
        assignments.append(Assignment(task_id=task.id, node_id=info.node.id))
    else:
        unschedulable.append(Unschedulable(task_id=task.id, reason=pipeline.explain()))


def _schedule_group(group: list[Task], state: _Pass) -> None:
    pipeline, assignments, unschedulable = state.pipeline, state.assignments, state.unschedulable
    prepared = _prepare(group[0], pipeline)
    if isinstance(prepared, str):
        unschedulable.extend(Unschedulable(task_id=t.id, reason=prepared) for t in group)
        return
    tree = _Tree(state.eligible(group[0]), group[0].service_id, prepared)
    for n, task in enumerate(group):
        info = tree.take(pipeline.accepts_dynamic, _placer(task))
        if info is None:
            reason = _explain(pipeline, state.infos)
            unschedulable.extend(Unschedulable(task_id=t.id, reason=reason) for t in group[n:])
            return
        assignments.append(Assignment(task_id=task.id, node_id=info.node.id))


def _placer(task: Task) -> Callable[[NodeInfo], None]:
    return lambda info: info.add_task(task)


def _explain(pipeline: Pipeline, infos: dict[str, NodeInfo]) -> str:
    for info in infos.values():
        pipeline.process(info)
    return pipeline.explain()


class _Tree:
    """Nodes grouped by the values of the spread keys; at the leaves, a heap of nodes."""

    __slots__ = ("_heap", "_leaf", "_service", "count")

    def __init__(self, infos: list[NodeInfo], service_id: str, spreads: tuple[str, ...]) -> None:
        self._service = service_id
        self._leaf = not spreads
        self._heap: list[tuple[Any, ...]]
        if self._leaf:
            self._heap = [(i.tasks_by_service.get(service_id, 0), len(i.tasks), i.node.id, i) for i in infos]
            self.count = sum(entry[0] for entry in self._heap)
        else:
            self._heap = self._branches(infos, spreads)
            self.count = sum(entry[0] for entry in self._heap)
        heapq.heapify(self._heap)

    def _branches(self, infos: list[NodeInfo], spreads: tuple[str, ...]) -> list[tuple[Any, ...]]:
        by_value: dict[str, list[NodeInfo]] = {}
        for info in infos:
            by_value.setdefault(node_attribute(info.node, spreads[0]) or "", []).append(info)
        children = [(value, _Tree(members, self._service, spreads[1:])) for value, members in by_value.items()]
        return [(child.count, value, child) for value, child in children]

    def take(self, accepts: Callable[[NodeInfo], bool], place: Callable[[NodeInfo], None]) -> NodeInfo | None:
        """Place on the best node that still `accepts`; drop the ones that no longer do."""
        heap = self._heap
        while heap:
            entry = heapq.heappop(heap)
            if self._leaf:
                info: NodeInfo | None = entry[3]
                assert info is not None
                if not accepts(info):
                    continue
                place(info)
                heapq.heappush(heap, (info.tasks_by_service.get(self._service, 0), len(info.tasks), entry[2], info))
            else:
                child: _Tree = entry[2]
                info = child.take(accepts, place)
                if info is None:
                    continue
                heapq.heappush(heap, (child.count, entry[1], child))
            self.count += 1
            return info
        return None
