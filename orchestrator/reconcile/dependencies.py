"""`depends_on` across hosts (pure): whether a service's tasks may start, given the services it depends on.

Compose's conditions, as `pycompose up` applies them on one host:
    service_started                  every replica of the dependency has started (STARTING or RUNNING)
    service_healthy                  every replica is RUNNING (the agent reports a task with a healthcheck
                                     STARTING until its container is healthy)
    service_completed_successfully   every replica ended COMPLETE (exit 0)
The gate holds a task before scheduling only: once started, a task is not stopped when a dependency later
fails (as Compose does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.model import (
    DependencyCondition,
    Node,
    NodeStatus,
    Service,
    ServiceMode,
    Task,
    TaskState,
    UpdateOrder,
    UpdateState,
)

_STARTED = (TaskState.STARTING, TaskState.RUNNING)
_WORDS = {DependencyCondition.STARTED: "to start", DependencyCondition.HEALTHY: "to be healthy",
          DependencyCondition.COMPLETED_SUCCESSFULLY: "to complete successfully"}


def waiting_for(service: Service, services: Mapping[str, Service], tasks: Mapping[str, Sequence[Task]]) -> str:
    """Why `service`'s tasks must wait ("" when they may start); `services` by name, `tasks` by service id."""
    for dep in service.spec.depends_on:
        other = services.get(dep.service)
        if other is None:
            return f"waiting for service {dep.service} (it does not exist)"
        if not is_met(other, tasks.get(other.id, ()), dep.condition):
            return f"waiting for service {dep.service} {_WORDS[dep.condition]}"
    return ""


def is_met(service: Service, tasks: Sequence[Task], condition: DependencyCondition) -> bool:
    live = [t for t in tasks if t.desired_state <= TaskState.RUNNING]
    if condition is DependencyCondition.COMPLETED_SUCCESSFULLY:
        return _completed(service, tasks)
    states = _STARTED if condition is DependencyCondition.STARTED else (TaskState.RUNNING,)
    up = sum(1 for t in live if t.status.state in states)
    if service.spec.mode is ServiceMode.GLOBAL:
        return up > 0 and up == len(live)
    return up >= service.spec.replicas


def _completed(service: Service, tasks: Sequence[Task]) -> bool:
    """The latest task of every slot (every node, for a global service) ended COMPLETE."""
    latest: dict[str, Task] = {}
    for task in sorted(tasks, key=lambda t: (t.created_at, t.id)):
        latest[str(task.slot) if task.slot else task.node_id or task.id] = task
    wanted = service.spec.replicas if service.spec.mode is ServiceMode.REPLICATED else max(1, len(latest))
    done = [t for t in latest.values() if t.status.state == TaskState.COMPLETE]
    return len(done) >= wanted and all(t.status.state == TaskState.COMPLETE for t in latest.values())


def waiting_for_predecessor(task: Task, service: Service, tasks: Sequence[Task], nodes: Mapping[str, Node]) -> str:
    """Stop-first updates (the default order): a new task waits until the task it replaces in its slot (for a
    global service: on its node) has stopped, as SwarmKit's updater does; a task on a node that is down is
    not waited for. "" when the task may go."""
    rolling_back = service.update_status is not None and service.update_status.state is UpdateState.ROLLBACK_STARTED
    config = service.spec.rollback_config if rolling_back else service.spec.update_config
    if config.order is not UpdateOrder.STOP_FIRST:
        return ""
    for other in tasks:
        if other.id == task.id or other.desired_state <= TaskState.RUNNING or other.status.state.is_terminal():
            continue
        same_slot = other.slot == task.slot if task.slot else other.node_id == task.node_id
        node = nodes.get(other.node_id or "")
        if same_slot and node is not None and node.status is NodeStatus.READY and other.status.state >= \
                TaskState.ASSIGNED:
            return f"waiting for task {other.id[:12]} (the one it replaces) to stop"
    return ""
