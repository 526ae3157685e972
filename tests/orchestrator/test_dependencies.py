"""`depends_on` across hosts (reconcile/dependencies.py): when a service's tasks may start."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.model import (
    ContainerSpec,
    DependencyCondition,
    Node,
    NodeStatus,
    Service,
    ServiceDependency,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateOrder,
)
from orchestrator.reconcile.dependencies import is_met, waiting_for, waiting_for_predecessor

STARTED, HEALTHY, COMPLETED = (DependencyCondition.STARTED, DependencyCondition.HEALTHY,
                               DependencyCondition.COMPLETED_SUCCESSFULLY)
SPEC = TaskSpec(container=ContainerSpec(image="busybox"))


def service(name: str, *, replicas: int = 2, mode: ServiceMode = ServiceMode.REPLICATED,
            depends_on: tuple[ServiceDependency, ...] = ()) -> Service:
    return Service(id=f"id-{name}", spec=ServiceSpec(name=name, task=SPEC, replicas=replicas, mode=mode,
                                                     depends_on=depends_on))


def task(svc: Service, slot: int, state: TaskState, *, desired: TaskState = TaskState.RUNNING, created: float = 1.0,
         node: str | None = None) -> Task:
    return Task(id=f"{svc.spec.name}.{slot}.{node}.{created}", service_id=svc.id, slot=slot, node_id=node,
                desired_state=desired, status=TaskStatus(state=state), spec=SPEC, created_at=created)


DB = service("db")


# --- service_started ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("states", "met"), [
    ((TaskState.RUNNING, TaskState.RUNNING), True),
    ((TaskState.STARTING, TaskState.RUNNING), True),  # started, not necessarily healthy
    ((TaskState.RUNNING, TaskState.ASSIGNED), False),
    ((TaskState.RUNNING,), False),  # one of two replicas
    ((TaskState.RUNNING, TaskState.FAILED), False),
    ((TaskState.PREPARING, TaskState.PENDING), False),
])
def test_service_started_counts_starting_and_running_replicas(states: tuple[TaskState, ...], met: bool) -> None:
    tasks = [task(DB, i, s) for i, s in enumerate(states, start=1)]
    assert is_met(DB, tasks, STARTED) is met


def test_tasks_told_to_stop_do_not_count() -> None:
    tasks = [task(DB, 1, TaskState.RUNNING), task(DB, 2, TaskState.RUNNING, desired=TaskState.SHUTDOWN)]
    assert not is_met(DB, tasks, STARTED)
    assert is_met(DB, [*tasks, task(DB, 2, TaskState.RUNNING, created=2.0)], STARTED)


# --- service_healthy ---------------------------------------------------------------------------------
def test_service_healthy_needs_every_replica_running() -> None:
    assert not is_met(DB, [task(DB, 1, TaskState.RUNNING), task(DB, 2, TaskState.STARTING)], HEALTHY)
    assert is_met(DB, [task(DB, 1, TaskState.RUNNING), task(DB, 2, TaskState.RUNNING)], HEALTHY)


# --- service_completed_successfully ---------------------------------------------------------------------
def test_service_completed_successfully_needs_every_slots_latest_task_complete() -> None:
    done = [task(DB, 1, TaskState.COMPLETE, desired=TaskState.SHUTDOWN),
            task(DB, 2, TaskState.COMPLETE, desired=TaskState.SHUTDOWN)]
    assert is_met(DB, done, COMPLETED)
    assert not is_met(DB, done[:1], COMPLETED)  # slot 2 has not run yet
    assert not is_met(DB, [done[0], task(DB, 2, TaskState.RUNNING)], COMPLETED)


def test_a_failed_slot_retried_to_completion_counts_and_a_retry_after_completion_does_not() -> None:
    failed = task(DB, 2, TaskState.FAILED, desired=TaskState.SHUTDOWN, created=1.0)
    retried = task(DB, 2, TaskState.COMPLETE, desired=TaskState.SHUTDOWN, created=2.0)
    one = task(DB, 1, TaskState.COMPLETE, desired=TaskState.SHUTDOWN, created=1.0)
    assert not is_met(DB, [one, failed], COMPLETED)
    assert is_met(DB, [one, failed, retried], COMPLETED)
    again = task(DB, 1, TaskState.FAILED, desired=TaskState.SHUTDOWN, created=3.0)  # the latest of slot 1 failed
    assert not is_met(DB, [one, failed, retried, again], COMPLETED)


def test_completed_of_a_global_service_is_per_node() -> None:
    agent = service("agent", mode=ServiceMode.GLOBAL, replicas=0)
    a = task(agent, 0, TaskState.COMPLETE, desired=TaskState.SHUTDOWN, node="n1")
    b = task(agent, 0, TaskState.RUNNING, node="n2")
    assert not is_met(agent, [a, b], COMPLETED)
    assert is_met(agent, [a, task(agent, 0, TaskState.COMPLETE, desired=TaskState.SHUTDOWN, node="n2")], COMPLETED)
    assert not is_met(agent, [], COMPLETED)  # nothing ran yet


# --- global dependencies, replicas 0 -------------------------------------------------------------------
def test_a_global_dependency_is_met_when_every_live_task_is_up() -> None:
    agent = service("agent", mode=ServiceMode.GLOBAL, replicas=0)
    up = [task(agent, 0, TaskState.RUNNING, node="n1"), task(agent, 0, TaskState.STARTING, node="n2")]
    assert is_met(agent, up, STARTED)
    assert not is_met(agent, up, HEALTHY)
    assert not is_met(agent, [*up, task(agent, 0, TaskState.ASSIGNED, node="n3")], STARTED)
    assert not is_met(agent, [], STARTED)  # no node runs it yet


def test_a_dependency_scaled_to_zero_is_met() -> None:
    idle = service("idle", replicas=0)
    assert is_met(idle, [], STARTED) and is_met(idle, [], HEALTHY) and is_met(idle, [], COMPLETED)


# --- waiting_for ---------------------------------------------------------------------------------------
def test_waiting_for_names_the_first_unmet_dependency_and_its_condition() -> None:
    cache = service("cache", replicas=1)
    migrate = service("migrate", replicas=1)
    web = service("web", depends_on=(ServiceDependency(service="db", condition=HEALTHY),
                                     ServiceDependency(service="cache"),
                                     ServiceDependency(service="migrate", condition=COMPLETED)))
    services = {s.spec.name: s for s in (DB, cache, migrate, web)}
    tasks: dict[str, list[Task]] = {DB.id: [task(DB, 1, TaskState.RUNNING), task(DB, 2, TaskState.STARTING)]}
    assert waiting_for(web, services, tasks) == "waiting for service db to be healthy"
    tasks[DB.id][1] = task(DB, 2, TaskState.RUNNING)
    assert waiting_for(web, services, tasks) == "waiting for service cache to start"
    tasks[cache.id] = [task(cache, 1, TaskState.STARTING)]
    assert waiting_for(web, services, tasks) == "waiting for service migrate to complete successfully"
    tasks[migrate.id] = [task(migrate, 1, TaskState.COMPLETE, desired=TaskState.SHUTDOWN)]
    assert waiting_for(web, services, tasks) == ""


def test_waiting_for_a_service_that_does_not_exist() -> None:
    web = service("web", depends_on=(ServiceDependency(service="ghost"),))
    assert waiting_for(web, {"web": web}, {}) == "waiting for service ghost (it does not exist)"


def test_a_service_without_dependencies_never_waits() -> None:
    assert waiting_for(DB, {}, {}) == ""


# --- stop-first updates: a new task waits for the one it replaces -------------------------------------
def _nodes(*names: str, status: NodeStatus = NodeStatus.READY) -> dict[str, Node]:
    return {n: Node(id=n, hostname=n, status=status) for n in names}


def test_stop_first_holds_the_new_task_until_its_predecessor_in_the_slot_has_stopped() -> None:
    web = service("web")
    old = task(web, 1, TaskState.RUNNING, desired=TaskState.SHUTDOWN, node="a")
    new = task(web, 1, TaskState.PENDING, created=2.0)
    other_slot = task(web, 2, TaskState.RUNNING, desired=TaskState.SHUTDOWN, node="a")
    reason = waiting_for_predecessor(new, web, [old, new, other_slot], _nodes("a"))
    assert reason.startswith("waiting for task") and "to stop" in reason
    stopped = dataclasses.replace(old, status=TaskStatus(state=TaskState.SHUTDOWN))
    assert waiting_for_predecessor(new, web, [stopped, new, other_slot], _nodes("a")) == ""


def test_start_first_and_a_down_node_do_not_hold_the_new_task() -> None:
    web = service("web")
    start_first = dataclasses.replace(web, spec=dataclasses.replace(
        web.spec, update_config=UpdateConfig(order=UpdateOrder.START_FIRST)))
    old = task(web, 1, TaskState.RUNNING, desired=TaskState.SHUTDOWN, node="a")
    new = task(web, 1, TaskState.PENDING, created=2.0)
    assert waiting_for_predecessor(new, start_first, [old, new], _nodes("a")) == ""
    assert waiting_for_predecessor(new, web, [old, new], _nodes("a", status=NodeStatus.DOWN)) == ""


def test_a_global_task_waits_for_the_one_on_its_own_node() -> None:
    agent = service("agent", mode=ServiceMode.GLOBAL, replicas=0)
    old_a = task(agent, 0, TaskState.RUNNING, desired=TaskState.SHUTDOWN, node="a")
    new_b = task(agent, 0, TaskState.PENDING, node="b", created=2.0)
    new_a = task(agent, 0, TaskState.PENDING, node="a", created=2.0)
    nodes = _nodes("a", "b")
    assert waiting_for_predecessor(new_b, agent, [old_a, new_b, new_a], nodes) == ""
    assert waiting_for_predecessor(new_a, agent, [old_a, new_b, new_a], nodes) != ""
