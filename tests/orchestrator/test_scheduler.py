from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.model import (
    ContainerSpec,
    Node,
    NodeAvailability,
    NodeRole,
    NodeStatus,
    Placement,
    PlacementPreference,
    PortConfig,
    PublishMode,
    ResourceRequirements,
    Resources,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from orchestrator.scheduler import (
    ConstraintError,
    NodeInfo,
    Pipeline,
    assign_task,
    build_node_infos,
    mark_unschedulable,
    parse_constraint,
    schedule,
)
from orchestrator.scheduler.filters import (
    AvailabilityFilter,
    ConstraintFilter,
    HostPortFilter,
    MemoryFilter,
    ReadyFilter,
)

GIB = 1 << 30


def node(node_id: str, **kw: object) -> Node:
    kw.setdefault("status", NodeStatus.READY)
    kw.setdefault("resources", Resources(nano_cpus=4_000_000_000, memory_bytes=8 * GIB))
    kw.setdefault("hostname", f"host-{node_id}")
    return Node(id=node_id, **kw)  # type: ignore[arg-type]


def spec(
    *, constraints: tuple[str, ...] = (), spread: tuple[str, ...] = (), memory: int = 0, cpus: int = 0
) -> TaskSpec:
    return TaskSpec(
        container=ContainerSpec(image="busybox"),
        placement=Placement(constraints=constraints, preferences=tuple(PlacementPreference(spread=s) for s in spread)),
        resources=ResourceRequirements(reservations=Resources(memory_bytes=memory, nano_cpus=cpus)),
    )


def tasks(service: str, count: int, task_spec: TaskSpec | None = None, **kw: object) -> list[Task]:
    task_spec = task_spec or spec()
    return [Task(id=f"{service}.{i}", service_id=service, slot=i, spec=task_spec, **kw) for i in range(count)]  # type: ignore[arg-type]


def infos(*nodes: Node, existing: tuple[Task, ...] = ()) -> list[NodeInfo]:
    return build_node_infos(nodes, existing)


def test_six_replicas_spread_two_per_node() -> None:
    d = schedule(infos(node("a"), node("b"), node("c")), tasks("web", 6))
    assert Counter(a.node_id for a in d.assignments) == {"a": 2, "b": 2, "c": 2}
    assert not d.unschedulable


def test_fewest_tasks_overall_breaks_ties() -> None:
    busy = Task(id="x", service_id="other", spec=spec(), node_id="a", status=TaskStatus(state=TaskState.RUNNING))
    d = schedule(infos(node("a"), node("b"), existing=(busy,)), tasks("web", 1))
    assert d.node_of("web.0") == "b"


def test_fewest_tasks_of_the_service_first() -> None:
    existing = tuple(
        Task(id=f"o{i}", service_id="other", spec=spec(), node_id="b", status=TaskStatus(state=TaskState.RUNNING))
        for i in range(3)
    ) + (Task(id="w", service_id="web", spec=spec(), node_id="a", status=TaskStatus(state=TaskState.RUNNING)),)
    d = schedule(infos(node("a"), node("b"), existing=existing), tasks("web", 1))
    assert d.node_of("web.0") == "b"


def test_finished_tasks_do_not_count() -> None:
    done = Task(
        id="x", service_id="web", spec=spec(memory=8 * GIB), node_id="a", status=TaskStatus(state=TaskState.COMPLETE)
    )
    info = NodeInfo.build(node("a"), [done])
    assert info.available.memory_bytes == 8 * GIB and not info.tasks


def test_drained_paused_and_down_nodes_get_nothing_and_are_explained() -> None:
    nodes = infos(
        node("a", availability=NodeAvailability.DRAIN),
        node("b", availability=NodeAvailability.PAUSE),
        node("c", status=NodeStatus.DOWN),
        node("d", availability=NodeAvailability.DRAIN),
    )
    d = schedule(nodes, tasks("web", 2))
    assert not d.assignments
    assert [u.reason for u in d.unschedulable] == [
        "no suitable node (2 nodes are drained; 1 node is not ready; 1 node is paused)"
    ] * 2


def test_memory_reservations_are_checked_incrementally() -> None:
    d = schedule(infos(node("a"), node("b")), tasks("db", 5, spec(memory=3 * GIB)))
    assert Counter(a.node_id for a in d.assignments) == {"a": 2, "b": 2}
    assert [u.task_id for u in d.unschedulable] == ["db.4"]
    assert d.unschedulable[0].reason == "no suitable node (2 nodes lacked memory)"


def test_swarmkit_style_explanation_orders_by_count() -> None:
    nodes = infos(node("a"), node("b"), node("c", availability=NodeAvailability.DRAIN))
    d = schedule(nodes, tasks("db", 1, spec(memory=9 * GIB)))
    assert d.unschedulable[0].reason == "no suitable node (2 nodes lacked memory; 1 node is drained)"


def test_cpu_reservations() -> None:
    d = schedule(infos(node("a")), tasks("cpu", 3, spec(cpus=1_500_000_000)))
    assert len(d.assignments) == 2
    assert d.unschedulable[0].reason == "no suitable node (1 node lacked CPU)"


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("node.role==manager", {"m"}),
        ("node.role != manager", {"w1", "w2"}),
        ("node.hostname==host-w1", {"w1"}),
        ("node.id==w2", {"w2"}),
        ("node.labels.zone==A", {"w1", "m"}),
        ("node.labels.zone!=a", {"w2"}),
        ("engine.labels.disk==ssd", {"w2"}),
    ],
)
def test_constraints(constraint: str, expected: set[str]) -> None:
    nodes = infos(
        node("m", role=NodeRole.MANAGER, labels={"zone": "a"}),
        node("w1", labels={"zone": "a"}),
        node("w2", engine_labels={"disk": "ssd"}),
    )
    d = schedule(nodes, tasks("s", 6, spec(constraints=(constraint,))))
    assert {a.node_id for a in d.assignments} == expected


def test_unsatisfiable_constraint_is_explained() -> None:
    d = schedule(infos(node("a"), node("b")), tasks("s", 1, spec(constraints=("node.labels.gpu==yes",))))
    assert d.unschedulable[0].reason == "no suitable node (2 nodes did not satisfy the constraints)"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("node.labels.zone=a", "expected KEY==VALUE or KEY!=VALUE"),
        ("node.colour==red", "unknown constraint key 'node.colour'"),
        ("node.labels.==x", "unknown constraint key"),
        ("node.role==", "the value is empty"),
    ],
)
def test_constraint_parse_errors_are_clear(expression: str, message: str) -> None:
    with pytest.raises(ConstraintError, match=message):
        parse_constraint(expression)


def test_bad_constraint_makes_tasks_unschedulable_with_the_parse_error() -> None:
    d = schedule(infos(node("a")), tasks("s", 2, spec(constraints=("zone=a",))))
    assert len(d.unschedulable) == 2 and "invalid constraint 'zone=a'" in d.unschedulable[0].reason


def test_host_ports_in_use() -> None:
    ports = (PortConfig(target_port=80, published_port=8080, publish_mode=PublishMode.HOST),)
    d = schedule(infos(node("a"), node("b")), tasks("web", 3, ports=ports))
    assert sorted(a.node_id for a in d.assignments) == ["a", "b"]
    assert d.unschedulable[0].reason == "no suitable node (2 nodes had host port 8080/tcp in use)"


def test_ingress_ports_do_not_block() -> None:
    ports = (PortConfig(target_port=80, published_port=8080),)
    d = schedule(infos(node("a")), tasks("web", 3, ports=ports))
    assert len(d.assignments) == 3


def test_spread_preference_balances_zones_first() -> None:
    nodes = infos(
        node("a1", labels={"zone": "a"}),
        node("a2", labels={"zone": "a"}),
        node("a3", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
    )
    d = schedule(nodes, tasks("web", 4, spec(spread=("node.labels.zone",))))
    placed = Counter(a.node_id for a in d.assignments)
    assert placed["b1"] == 2
    assert placed["a1"] + placed["a2"] + placed["a3"] == 2


def test_spread_counts_existing_tasks_in_each_zone() -> None:
    running = Task(id="old", service_id="web", spec=spec(), node_id="a1", status=TaskStatus(state=TaskState.RUNNING))
    nodes = infos(node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"}), existing=(running,))
    d = schedule(nodes, tasks("web", 1, spec(spread=("node.labels.zone",))))
    assert d.node_of("web.0") == "b1"


def test_pinned_tasks_are_checked_on_their_node() -> None:
    global_spec = spec(memory=6 * GIB)
    pinned = [
        Task(id="g.a", service_id="g", spec=global_spec, node_id="a"),
        Task(id="g.b", service_id="g", spec=global_spec, node_id="b"),
    ]
    d = schedule(infos(node("a"), node("b", resources=Resources(memory_bytes=GIB))), pinned)
    assert d.node_of("g.a") == "a"
    assert d.unschedulable[0].reason == "no suitable node (1 node lacked memory)"


def test_schedule_is_pure() -> None:
    nodes = infos(node("a"))
    schedule(nodes, tasks("web", 3, spec(memory=GIB)))
    assert not nodes[0].tasks and nodes[0].available.memory_bytes == 8 * GIB


def test_assign_and_pending_helpers() -> None:
    (task,) = tasks("web", 1)
    assigned = assign_task(task, "a", now=1.0)
    assert (assigned.node_id, assigned.status.state) == ("a", TaskState.ASSIGNED)
    pending = mark_unschedulable(task, "no suitable node", now=1.0)
    assert pending.status.state is TaskState.PENDING and pending.status.err == "no suitable node"


def test_filters_one_by_one() -> None:
    (task,) = tasks("web", 1, spec(constraints=("node.labels.zone==a",), memory=GIB))
    ready, drained = (
        NodeInfo.build(node("a", labels={"zone": "a"})),
        NodeInfo.build(node("b", availability=NodeAvailability.DRAIN, status=NodeStatus.DOWN)),
    )
    assert ReadyFilter().set_task(task) and ReadyFilter().check(ready) and not ReadyFilter().check(drained)
    avail = AvailabilityFilter(NodeAvailability.DRAIN)
    assert avail.check(ready) and not avail.check(drained) and avail.explain(1) == "1 node is drained"
    constraint = ConstraintFilter()
    assert constraint.set_task(task) and constraint.check(ready) and not constraint.check(drained)
    memory = MemoryFilter()
    assert memory.set_task(task) and memory.check(ready) and memory.explain(3) == "3 nodes lacked memory"
    assert not HostPortFilter().set_task(task)  # no host ports: the filter does not apply
    pipeline = Pipeline()
    pipeline.set_task(task)
    assert pipeline.process(ready) and not pipeline.process(drained)
    assert pipeline.explain() == "no suitable node (1 node is not ready)"
