"""Pure decisions of the reconciler; see the package docstring."""

from __future__ import annotations

import dataclasses
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.model import (
    FailureAction,
    Node,
    NodeAvailability,
    NodeStatus,
    PortConfig,
    PublishMode,
    RestartCondition,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskState,
    TaskStatus,
    UpdateOrder,
    UpdateState,
    UpdateStatus,
)
from orchestrator.scheduler.constraint import ConstraintError, parse_constraints

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_FAILED = (TaskState.FAILED, TaskState.REJECTED)


def new_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(25))


@dataclass(slots=True, kw_only=True)
class Plan:
    creates: list[Task] = field(default_factory=list)
    updates: dict[str, Task] = field(default_factory=dict)  # task id -> changed task
    deletes: list[str] = field(default_factory=list)
    service: Service | None = None  # the service with a changed update status, if it changed
    wake_at: float | None = None  # run again at this time (a restart delay, an update delay)

    def shutdown(self, task: Task, message: str = "") -> None:
        current = self.updates.get(task.id, task)
        if current.desired_state > TaskState.RUNNING:
            return
        status = current.status
        if message and not status.state.is_terminal():
            status = dataclasses.replace(status, message=message)
        self.updates[task.id] = dataclasses.replace(current, desired_state=TaskState.SHUTDOWN, status=status)

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

    def is_empty(self) -> bool:
        return not (self.creates or self.updates or self.deletes or self.service)


def new_task(service: Service, *, slot: int = 0, node_id: str | None = None, now: float,
             make_id: Callable[[], str] = new_id) -> Task:
    spec = service.spec
    return Task(
        id=make_id(), service_id=service.id, slot=slot, node_id=node_id, desired_state=TaskState.RUNNING,
        status=TaskStatus(state=TaskState.NEW, message="created", timestamp=now),
        spec=spec.task, ports=spec.endpoint.ports, created_at=now, updated_at=now,
    )


def port_shape(ports: Iterable[PortConfig]) -> list[tuple[str, int, str, int]]:
    """What of a service's ports its task containers depend on: a host-mode port is the container's own
    binding; an ingress port needs the task on the ingress network, whatever its published number."""
    return sorted((p.protocol.value, p.target_port, p.publish_mode.value,
                   p.published_port if p.publish_mode is PublishMode.HOST else 0) for p in ports)


def is_current(task: Task, spec: ServiceSpec) -> bool:
    """Whether the task runs what the service says now (else a rolling update replaces it)."""
    return task.spec == spec.task and port_shape(task.ports) == port_shape(spec.endpoint.ports)


def is_live(task: Task) -> bool:
    return task.desired_state <= TaskState.RUNNING


def is_node_usable(node: Node | None) -> bool:
    """Whether tasks may keep running on `node`: it exists, is not down, is not drained."""
    return node is not None and node.status is not NodeStatus.DOWN and node.availability is not NodeAvailability.DRAIN


def plan_service(service: Service, tasks: Sequence[Task], nodes: Mapping[str, Node], *, now: float,
                 history: int = 5, make_id: Callable[[], str] = new_id) -> Plan:
    plan = Plan()
    target = service
    target = _check_update(service, tasks, plan, now=now)
    if service.spec.mode is ServiceMode.GLOBAL:
        groups = _by_key(tasks, lambda t: t.node_id or "")
        wanted = {node_id: 0 for node_id, node in nodes.items() if _is_global_target(target, node)}
        for node_id in set(groups) - set(wanted):
            for task in groups[node_id]:
                plan.shutdown(task, "node is not eligible for this global service")
        for node_id in wanted:
            _plan_slot(target, groups.get(node_id, []), nodes, plan, now=now, slot=0, node_id=node_id,
                       make_id=make_id)
    else:
        groups = _by_key(tasks, lambda t: str(t.slot))
        replicas = target.spec.replicas
        for key, group in groups.items():
            if int(key) > replicas:
                for task in group:
                    plan.shutdown(task, "service scaled down")
        for slot in range(1, replicas + 1):
            _plan_slot(target, groups.get(str(slot), []), nodes, plan, now=now, slot=slot, node_id=None,
                       make_id=make_id)
    _plan_update(target, tasks, nodes, plan, now=now, make_id=make_id)
    # the restart limit is counted from the slot's finished tasks: keep at least that many
    _trim_history(tasks, plan, history=max(history, service.spec.task.restart_policy.max_attempts + 1))
    for task in tasks:  # a removed node reports nothing more: forget its finished tasks
        if task.node_id is not None and task.node_id not in nodes and not is_live(task) and task.id not in plan.deletes:
            plan.deletes.append(task.id)
    return plan


def plan_orphans(tasks: Iterable[Task], nodes: Mapping[str, Node]) -> Plan:
    """Tasks whose service is gone: shut down, and deleted once they no longer run anywhere."""
    plan = Plan()
    for task in tasks:
        node = nodes.get(task.node_id or "")
        if task.status.state.is_terminal() or node is None or node.status is NodeStatus.DOWN or (
                task.status.state < TaskState.ASSIGNED):
            plan.deletes.append(task.id)
        else:
            plan.shutdown(task, "service removed")
    return plan


def _by_key(tasks: Iterable[Task], key: Callable[[Task], str]) -> dict[str, list[Task]]:
    groups: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        groups[key(task)].append(task)
    for group in groups.values():
        group.sort(key=lambda t: (t.created_at, t.id))
    return groups


def _is_global_target(service: Service, node: Node) -> bool:
    if node.status is NodeStatus.DOWN or node.availability is not NodeAvailability.ACTIVE:
        return False
    try:
        return all(c.matches(node) for c in parse_constraints(service.spec.task.placement.constraints))
    except ConstraintError:
        return False


def _plan_slot(service: Service, group: list[Task], nodes: Mapping[str, Node], plan: Plan, *, now: float,
               slot: int, node_id: str | None, make_id: Callable[[], str]) -> None:
    """One replica slot (or one node of a global service): keep one live task there, restarting as told."""
    live = []
    for task in group:
        if not is_live(task):
            continue
        if task.node_id is not None and not is_node_usable(nodes.get(task.node_id)):
            plan.shutdown(task, "node is down or drained: task rescheduled")
        elif task.status.state.is_terminal():
            plan.shutdown(task)
        else:
            live.append(task)
    if live:
        return
    latest = group[-1] if group else None
    ended = (TaskState.FAILED, TaskState.REJECTED, TaskState.COMPLETE)
    if latest is not None and latest.status.state in ended and is_node_usable(nodes.get(latest.node_id or "")):
        policy = latest.spec.restart_policy
        if not _should_restart(policy.condition, latest.status.state):
            return
        if policy.max_attempts and _restarts(group, latest, policy.window, now) >= policy.max_attempts:
            return
        restart_at = latest.status.timestamp + policy.delay
        if now < restart_at:
            plan.wake(restart_at)
            return
    plan.creates.append(new_task(service, slot=slot, node_id=node_id, now=now, make_id=make_id))


def _should_restart(condition: RestartCondition, state: TaskState) -> bool:
    if condition is RestartCondition.NONE:
        return False
    if condition is RestartCondition.ON_FAILURE:
        return state in _FAILED
    return True


def _restarts(group: Sequence[Task], latest: Task, window: float, now: float) -> int:
    """Restarts the slot already had: every task that ended before `latest` was followed by another. As
    SwarmKit's restart supervisor, count restarts (not failures: max attempts 2 is three runs in all), and
    only of `latest`'s spec (an update starts the count again)."""
    ended = [t for t in group if t is not latest and t.spec == latest.spec and t.status.state.is_terminal()
             and t.status.state is not TaskState.SHUTDOWN]
    if window:
        ended = [t for t in ended if t.status.timestamp >= now - window]
    return len(ended)


def _check_update(service: Service, tasks: Sequence[Task], plan: Plan, *, now: float) -> Service:
    """Notice a failed or finished update; returns the service as the rest of the plan should see it."""
    status = service.update_status
    if status is None or status.state not in (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED):
        return service
    rolling_back = status.state is UpdateState.ROLLBACK_STARTED
    config = service.spec.rollback_config if rolling_back else service.spec.update_config
    new = [t for t in tasks if is_current(t, service.spec) and t.created_at >= status.started_at]
    failed = [t for t in new if t.status.state in _FAILED]
    if failed and config.failure_action is not FailureAction.CONTINUE:
        reason = f"update failed: task {failed[0].id} {failed[0].status.state.name.lower()}: {failed[0].status.err}"
        if config.failure_action is FailureAction.ROLLBACK and not rolling_back and service.previous_spec:
            changed = dataclasses.replace(
                service, spec=service.previous_spec, previous_spec=service.spec,
                update_status=UpdateStatus(state=UpdateState.ROLLBACK_STARTED, started_at=now,
                                           message=f"rollback started: {reason}"))
        else:
            paused = UpdateState.ROLLBACK_PAUSED if rolling_back else UpdateState.PAUSED
            changed = dataclasses.replace(
                service, update_status=UpdateStatus(state=paused, started_at=status.started_at,
                                                    message=f"update paused: {reason}"))
        plan.service = changed
        return changed
    return service


def _plan_update(service: Service, tasks: Sequence[Task], nodes: Mapping[str, Node], plan: Plan, *, now: float,
                 make_id: Callable[[], str]) -> None:
    """Replace live tasks of an older spec, `parallelism` at a time, `delay` after the last batch ran."""
    status = service.update_status
    live = [plan.updates.get(t.id, t) for t in tasks]
    live = [t for t in live if is_live(t)]
    dirty = [t for t in live if not is_current(t, service.spec)]
    new = [t for t in live if is_current(t, service.spec)]
    paused = status is not None and status.state in (UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED)
    if not dirty:
        if status is not None and status.state in (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED) \
                and all(t.status.state == TaskState.RUNNING for t in new) and plan.service is None:
            done = UpdateState.ROLLBACK_COMPLETED if status.state is UpdateState.ROLLBACK_STARTED \
                else UpdateState.COMPLETED
            plan.service = dataclasses.replace(service, update_status=UpdateStatus(
                state=done, started_at=status.started_at, completed_at=now,
                message="rollback completed" if done is UpdateState.ROLLBACK_COMPLETED else "update completed"))
        return
    if paused:
        return
    config = service.spec.rollback_config if status and status.state is UpdateState.ROLLBACK_STARTED \
        else service.spec.update_config
    by_slot = _by_key(live, _slot_key)
    # start-first: the old task of a slot goes once its replacement runs
    for group in by_slot.values():
        fresh = [t for t in group if is_current(t, service.spec)]
        if fresh and any(t.status.state == TaskState.RUNNING for t in fresh):
            for task in group:
                if not is_current(task, service.spec):
                    plan.shutdown(task, "replaced by an updated task")
    started = status.started_at if status else 0.0
    in_flight = [t for t in new if t.created_at >= started and t.status.state < TaskState.RUNNING]
    in_flight += [t for t in plan.creates if is_current(t, service.spec)]
    if in_flight:
        return
    ran = [t.status.timestamp for t in new if t.created_at >= started and t.status.state == TaskState.RUNNING]
    next_at = (max(ran) + config.delay) if ran else now
    if now < next_at:
        plan.wake(next_at)
        return
    batch = [t for t in dirty if t.id not in plan.updates or is_live(plan.updates[t.id])]
    batch = [t for t in batch if not any(is_current(f, service.spec) for f in by_slot.get(_slot_key(t), []))]
    if config.parallelism:
        batch = batch[: config.parallelism]
    for task in batch:
        if config.order is UpdateOrder.STOP_FIRST:
            plan.shutdown(task, "task updated: replaced by a new one")
        pinned = task.node_id if service.spec.mode is ServiceMode.GLOBAL else None
        plan.creates.append(new_task(service, slot=task.slot, node_id=pinned, now=now, make_id=make_id))


def _slot_key(task: Task) -> str:
    return f"{task.slot}/{task.node_id}" if task.slot == 0 else str(task.slot)


def _trim_history(tasks: Sequence[Task], plan: Plan, *, history: int) -> None:
    """Keep the latest `history` finished tasks of each slot; delete older ones."""
    groups = _by_key(tasks, _slot_key)
    for group in groups.values():
        done = [t for t in group if not is_live(t) and t.status.state.is_terminal()]
        for task in done[: max(0, len(done) - history)]:
            plan.deletes.append(task.id)
