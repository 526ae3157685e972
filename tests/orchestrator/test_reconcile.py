"""The reconciler's pure plan: replicas, restarts, down and drained nodes, global services, updates."""

from __future__ import annotations

import dataclasses
import itertools

from orchestrator.agent.executor import Action, Container, plan_task
from orchestrator.model import (
    ContainerSpec,
    FailureAction,
    Node,
    NodeAvailability,
    NodeStatus,
    RestartCondition,
    RestartPolicy,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateState,
    UpdateStatus,
)
from orchestrator.reconcile import plan_orphans, plan_service

_ids = itertools.count()


def make_id() -> str:
    return f"t{next(_ids)}"


def service(replicas: int = 3, *, mode: ServiceMode = ServiceMode.REPLICATED, image: str = "busybox",
            restart: RestartPolicy | None = None, update: UpdateConfig | None = None) -> Service:
    task = TaskSpec(container=ContainerSpec(image=image), restart_policy=restart or RestartPolicy(delay=0))
    return Service(id="s1", spec=ServiceSpec(name="web", task=task, mode=mode, replicas=replicas,
                                             update_config=update or UpdateConfig()))


def nodes(*names: str, **changes: object) -> dict[str, Node]:
    fields: dict[str, object] = {"status": NodeStatus.READY, **changes}
    return {n: Node(id=n, hostname=n, **fields) for n in names}  # type: ignore[arg-type]


def running(svc: Service, slot: int, node: str, *, created: float = 1.0, state: TaskState = TaskState.RUNNING) -> Task:
    return Task(id=f"{svc.spec.name}-{slot}-{node}-{created}", service_id=svc.id, slot=slot, node_id=node,
                spec=svc.spec.task, status=TaskStatus(state=state, timestamp=created), created_at=created)


def test_missing_replicas_are_created_pending() -> None:
    plan = plan_service(service(3), [], nodes("a"), now=10.0, make_id=make_id)
    assert sorted(t.slot for t in plan.creates) == [1, 2, 3]
    assert all(t.status.state is TaskState.NEW and t.node_id is None for t in plan.creates)  # the allocator goes next


def test_scale_down_shuts_down_the_highest_slots() -> None:
    svc = service(1)
    tasks = [running(svc, 1, "a"), running(svc, 2, "a")]
    plan = plan_service(svc, tasks, nodes("a"), now=10.0, make_id=make_id)
    assert [t.slot for t in plan.updates.values()] == [2]
    assert all(t.desired_state is TaskState.SHUTDOWN for t in plan.updates.values())
    assert not plan.creates


def test_tasks_on_a_down_node_are_replaced_at_once() -> None:
    svc = service(1)
    plan = plan_service(svc, [running(svc, 1, "a")], nodes("a", status=NodeStatus.DOWN), now=10.0, make_id=make_id)
    assert [t.slot for t in plan.creates] == [1]
    assert next(iter(plan.updates.values())).desired_state is TaskState.SHUTDOWN


def test_tasks_on_a_drained_node_are_replaced() -> None:
    svc = service(1)
    plan = plan_service(svc, [running(svc, 1, "a")], nodes("a", availability=NodeAvailability.DRAIN), now=10.0,
                        make_id=make_id)
    assert len(plan.creates) == 1


def test_a_failed_task_restarts_after_the_delay_and_within_max_attempts() -> None:
    svc = service(1, restart=RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=5.0, max_attempts=2))
    failed = running(svc, 1, "a", created=1.0, state=TaskState.FAILED)
    early = plan_service(svc, [failed], nodes("a"), now=3.0, make_id=make_id)
    assert not early.creates and early.wake_at == 6.0
    late = plan_service(svc, [failed], nodes("a"), now=7.0, make_id=make_id)
    assert len(late.creates) == 1
    second = running(svc, 1, "a", created=2.0, state=TaskState.FAILED)
    again = plan_service(svc, [failed, second], nodes("a"), now=100.0, make_id=make_id)
    assert len(again.creates) == 1  # one restart so far: max attempts counts restarts, as SwarmKit's
    third = running(svc, 1, "a", created=3.0, state=TaskState.FAILED)
    done = plan_service(svc, [failed, second, third], nodes("a"), now=100.0, make_id=make_id)
    assert not done.creates  # two restarts: max attempts reached


def test_a_completed_task_is_not_restarted_on_failure_policy() -> None:
    svc = service(1, restart=RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=0))
    plan = plan_service(svc, [running(svc, 1, "a", state=TaskState.COMPLETE)], nodes("a"), now=5.0, make_id=make_id)
    assert not plan.creates


def test_global_service_one_task_per_active_node() -> None:
    svc = service(0, mode=ServiceMode.GLOBAL)
    all_nodes = nodes("a", "b") | {"c": Node(id="c", status=NodeStatus.READY, availability=NodeAvailability.DRAIN)}
    plan = plan_service(svc, [running(svc, 0, "a")], all_nodes, now=1.0, make_id=make_id)
    assert [t.node_id for t in plan.creates] == ["b"]


def test_rolling_update_replaces_one_task_at_a_time() -> None:
    old = service(3)
    new = dataclasses.replace(old, spec=dataclasses.replace(
        old.spec, task=dataclasses.replace(old.spec.task, container=ContainerSpec(image="busybox:2")),
        update_config=UpdateConfig(parallelism=1, delay=2.0)),
        previous_spec=old.spec, update_status=UpdateStatus(state=UpdateState.UPDATING, started_at=5.0))
    tasks = [running(old, slot, "a") for slot in (1, 2, 3)]
    plan = plan_service(new, tasks, nodes("a"), now=6.0, make_id=make_id)
    assert len(plan.creates) == 1 and len(plan.updates) == 1
    fresh = dataclasses.replace(plan.creates[0], status=TaskStatus(state=TaskState.RUNNING, timestamp=7.0))
    shut = next(iter(plan.updates.values()))
    waiting = plan_service(new, [fresh, shut, *tasks[1:]], nodes("a"), now=8.0, make_id=make_id)
    assert not waiting.creates and waiting.wake_at == 9.0  # the update delay after the batch ran
    assert len(plan_service(new, [fresh, shut, *tasks[1:]], nodes("a"), now=9.5, make_id=make_id).creates) == 1


def test_a_failed_update_rolls_back() -> None:
    old = service(2)
    new_spec = dataclasses.replace(old.spec, task=dataclasses.replace(
        old.spec.task, container=ContainerSpec(image="bad")),
        update_config=UpdateConfig(failure_action=FailureAction.ROLLBACK))
    new = dataclasses.replace(old, spec=new_spec, previous_spec=old.spec,
                              update_status=UpdateStatus(state=UpdateState.UPDATING, started_at=5.0))
    rejected = dataclasses.replace(running(new, 1, "a", created=6.0, state=TaskState.REJECTED))
    plan = plan_service(new, [rejected, running(old, 2, "a")], nodes("a"), now=7.0, make_id=make_id)
    assert plan.service is not None and plan.service.spec == old.spec
    assert plan.service.update_status is not None
    assert plan.service.update_status.state is UpdateState.ROLLBACK_STARTED


def test_tasks_of_a_removed_service_are_shut_down_then_deleted() -> None:
    svc = service(1)
    live, done = running(svc, 1, "a"), running(svc, 2, "a", state=TaskState.SHUTDOWN)
    plan = plan_orphans([live, done], nodes("a"))
    assert plan.deletes == [done.id] and plan.updates[live.id].desired_state is TaskState.SHUTDOWN


def test_agent_plan_for_one_task() -> None:
    svc = service(1)
    assigned = running(svc, 1, "a", state=TaskState.ASSIGNED)
    assert plan_task(assigned, None).action is Action.START
    container = Container(id="c", task_id=assigned.id, state="exited", exit_code=3)
    decision = plan_task(dataclasses.replace(assigned, status=TaskStatus(state=TaskState.RUNNING)), container)
    assert decision.observed is TaskState.FAILED and "non-zero exit (3)" in decision.err
    stopping = dataclasses.replace(assigned, desired_state=TaskState.SHUTDOWN)
    assert plan_task(stopping, Container(id="c", task_id=assigned.id, state="running")).action is Action.REMOVE


def test_dockers_service_spec_shape_round_trips() -> None:
    from orchestrator.manager.dockershape import from_docker, to_docker
    from orchestrator.model import (
        EndpointSpec,
        Mount,
        MountType,
        Placement,
        PlacementPreference,
        PortConfig,
        PublishMode,
        ResourceRequirements,
        Resources,
        UpdateOrder,
    )

    container = ContainerSpec(image="busybox", args=("sleep", "1"), env=("A=1",), labels={"x": "y"},
                              mounts=(Mount(type=MountType.VOLUME, source="data", target="/data"),))
    task = TaskSpec(container=container, restart_policy=RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=2),
                    resources=ResourceRequirements(limits=Resources(memory_bytes=1 << 26)),
                    placement=Placement(constraints=("node.role==worker",),
                                        preferences=(PlacementPreference(spread="node.labels.zone"),)))
    spec = ServiceSpec(name="web", task=task, replicas=4,
                       update_config=UpdateConfig(parallelism=2, delay=1.5, order=UpdateOrder.START_FIRST),
                       endpoint=EndpointSpec(ports=(PortConfig(target_port=80, published_port=8080,
                                                               publish_mode=PublishMode.HOST),)))
    docker = to_docker(spec)
    assert docker["Mode"] == {"Replicated": {"Replicas": 4}}
    assert docker["UpdateConfig"]["Delay"] == 1_500_000_000 and docker["UpdateConfig"]["Order"] == "start-first"
    assert from_docker(docker) == spec
    global_spec = dataclasses.replace(spec, mode=ServiceMode.GLOBAL, replicas=0)
    assert from_docker(to_docker(global_spec)) == global_spec


def test_tasks_of_a_removed_node_are_replaced_then_forgotten() -> None:
    svc = service(1)
    task = running(svc, 1, "gone")
    plan = plan_service(svc, [task], nodes("a"), now=5.0, make_id=make_id)
    assert len(plan.creates) == 1 and plan.updates[task.id].desired_state is TaskState.SHUTDOWN
    later = plan_service(svc, [plan.updates[task.id], *plan.creates], nodes("a"), now=6.0, make_id=make_id)
    assert later.deletes == [task.id] and not later.creates


def test_history_keeps_enough_tasks_to_count_a_restart_limit_above_it() -> None:
    """--restart-max-attempts 7 with the default history of 5: the finished tasks it counts are kept."""
    svc = service(1, restart=RestartPolicy(condition=RestartCondition.ON_FAILURE, delay=0, max_attempts=7))
    failed = [dataclasses.replace(running(svc, 1, "a", created=float(i), state=TaskState.FAILED),
                                  desired_state=TaskState.SHUTDOWN) for i in range(1, 9)]
    plan = plan_service(svc, failed, nodes("a"), now=100.0, make_id=make_id)
    assert plan.deletes == []  # none trimmed: all 8 count (the first run and 7 restarts)
    assert plan.creates == []  # the limit is reached: no ninth task
    trimmed = plan_service(svc, failed[:7], nodes("a"), now=100.0, make_id=make_id)
    assert len(trimmed.creates) == 1  # 6 restarts so far: one more
