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

from orchestrator.model import DependencyCondition, Service, ServiceMode, Task, TaskState

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
