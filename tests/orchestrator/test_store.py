from __future__ import annotations

import asyncio
import dataclasses

import pytest

from orchestrator.model import (
    ContainerSpec,
    Node,
    NodeAvailability,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    from_dict,
    to_dict,
)
from orchestrator.store import (
    ChangeAction,
    LocalProposer,
    ObjectExists,
    ObjectKind,
    ObjectNotFound,
    Op,
    Reset,
    StateMachine,
    Store,
    VersionConflict,
)
from orchestrator.store.state import Rejection

SPEC = TaskSpec(container=ContainerSpec(image="busybox", command=("sleep", "1d")))


def make_task(task_id: str, **kw: object) -> Task:
    return Task(id=task_id, service_id="svc", spec=SPEC, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store() -> Store:
    return Store(LocalProposer())


def test_model_round_trip_keeps_enums_and_nesting() -> None:
    task = make_task("t1", status=TaskStatus(state=TaskState.RUNNING, message="started"))
    data = to_dict(task)
    assert data["status"]["state"] == "running"
    assert from_dict(Task, data) == task


def test_task_states_are_ordered() -> None:
    assert TaskState.NEW < TaskState.PENDING < TaskState.ASSIGNED < TaskState.RUNNING < TaskState.COMPLETE
    assert TaskState.RUNNING < TaskState.SHUTDOWN < TaskState.FAILED < TaskState.REJECTED < TaskState.ORPHANED
    assert TaskState.FAILED.is_terminal() and not TaskState.RUNNING.is_terminal()


def test_create_sets_version_and_update_bumps_it(store: Store) -> None:
    node = store.create(Node(id="n1", hostname="a"))
    assert node.version == 1
    drained = store.update(dataclasses.replace(node, availability=NodeAvailability.DRAIN))
    assert drained.version == 2
    assert store.get(Node, "n1") == drained


def test_stale_update_is_a_conflict(store: Store) -> None:
    node = store.create(Node(id="n1"))
    store.update(dataclasses.replace(node, hostname="b"))
    with pytest.raises(VersionConflict, match="stale"):
        store.update(dataclasses.replace(node, hostname="c"))
    assert store.get(Node, "n1").hostname == "b"  # type: ignore[union-attr]


def test_create_twice_and_missing_delete_fail(store: Store) -> None:
    store.create(Node(id="n1"))
    with pytest.raises(ObjectExists):
        store.create(Node(id="n1"))
    with pytest.raises(ObjectNotFound):
        store.delete(Node, "nope")


def test_transaction_is_all_or_nothing(store: Store) -> None:
    store.create(make_task("t1"))
    with pytest.raises(ObjectExists):
        store.transact([Op.create(make_task("t2")), Op.create(make_task("t1"))])
    assert store.get(Task, "t2") is None
    revision = store.revision
    commit = store.transact([Op.create(make_task("t2")), Op.create(make_task("t3")), Op.delete(Task, "t1")])
    assert commit.revision == revision + 1
    assert sorted(t.id for t in store.list(Task)) == ["t2", "t3"]


def test_watch_sees_changes_in_commit_order(store: Store) -> None:
    with store.watch(kinds=[ObjectKind.TASK]) as watch:
        store.create(Node(id="n1"))
        task = store.create(make_task("t1"))
        store.update(dataclasses.replace(task, node_id="n1"))
        store.delete(Task, "t1")
        events = watch.drain()
    assert [(e.action, e.obj.id) for e in events] == [  # type: ignore[union-attr]
        (ChangeAction.CREATE, "t1"),
        (ChangeAction.UPDATE, "t1"),
        (ChangeAction.DELETE, "t1"),
    ]


def test_async_watch_delivers_to_the_loop(store: Store) -> None:
    async def main() -> list[str]:
        async with store.watch_async(asyncio.get_running_loop()) as watch:
            await asyncio.to_thread(store.create, Service(id="s1", spec=ServiceSpec(name="web", task=SPEC)))
            event = await asyncio.wait_for(watch.get(), 2)
            return [event.obj.id]  # type: ignore[union-attr]

    assert asyncio.run(main()) == ["s1"]


def test_digest_and_dump_round_trip(store: Store) -> None:
    store.create(Node(id="n1", labels={"zone": "a"}))
    store.create(make_task("t1"))
    copy = StateMachine()
    resets: list[int] = []
    copy.add_reset_listener(lambda: resets.append(copy.revision))
    copy.load(store.machine.dump())
    assert copy.digest() == store.digest()
    assert resets == [2]
    store.create(make_task("t2"))
    assert copy.digest() != store.digest()


def test_reset_reaches_watchers() -> None:
    machine = StateMachine()
    store = Store(LocalProposer(machine))
    with store.watch() as watch:
        machine.load(StateMachine().dump())
        assert watch.drain() == [Reset(revision=0)]


def test_service_names_are_unique(store: Store) -> None:
    web = store.create(Service(id="s1", spec=ServiceSpec(name="web", task=SPEC)))
    with pytest.raises(ObjectExists, match="service name 'web' is already used by s1"):
        store.create(Service(id="s2", spec=ServiceSpec(name="web", task=SPEC)))
    renamed = store.update(dataclasses.replace(web, spec=dataclasses.replace(web.spec, name="www")))
    store.create(Service(id="s2", spec=ServiceSpec(name="web", task=SPEC)))
    # a rename and a take-over of the freed name in one transaction
    store.transact(
        [
            Op.update(dataclasses.replace(renamed, spec=dataclasses.replace(renamed.spec, name="old"))),
            Op.create(Service(id="s3", spec=ServiceSpec(name="www", task=SPEC))),
        ]
    )
    copy = StateMachine()
    copy.load(store.machine.dump())
    assert isinstance(
        copy.apply([Op.create(Service(id="s4", spec=ServiceSpec(name="www", task=SPEC))).to_wire()]), Rejection
    )
