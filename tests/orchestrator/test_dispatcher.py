"""The dispatcher's assignments over a real store (local proposer): tasks, networks, secrets, and the digest
that wakes long-polling agents."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time

import pytest

from orchestrator.manager.dispatcher import Dispatcher, StatusReport
from orchestrator.model import (
    Config,
    ContainerSpec,
    Endpoint,
    FileReference,
    Network,
    NetworkAttachment,
    NetworkAttachmentConfig,
    NetworkSpec,
    Node,
    NodeStatus,
    Secret,
    SecretSpec,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
    from_dict,
)
from orchestrator.security.sealing import Sealer, content_digest
from orchestrator.store import LocalProposer, Store

SEALER = Sealer("raft-secret")
BACK = Network(id="nb", spec=NetworkSpec(name="back"), vni=4097, subnet="10.0.1.0/24", gateway="10.0.1.1")
FRONT = Network(id="nf", spec=NetworkSpec(name="front"), vni=4098, subnet="10.0.2.0/24", gateway="10.0.2.1")


def sealed(kind: type[Secret] | type[Config], oid: str, name: str, data: bytes) -> Secret | Config:
    return kind(id=oid, spec=SecretSpec(name=name), sealed=SEALER.seal(data, context=oid), digest=content_digest(data))


def unseal(obj: Secret | Config) -> bytes:
    return SEALER.unseal(obj.sealed, context=obj.id)


def container(*, secrets: tuple[str, ...] = (), configs: tuple[str, ...] = ()) -> ContainerSpec:
    return ContainerSpec(image="busybox", secrets=tuple(FileReference(id=s, name=s, target=s) for s in secrets),
                         configs=tuple(FileReference(id=c, name=c, target=f"/{c}") for c in configs))


def service(sid: str, network: str, vip: str, spec: ContainerSpec) -> Service:
    task = TaskSpec(container=spec, networks=(NetworkAttachmentConfig(target=network),))
    return Service(id=sid, spec=ServiceSpec(name=sid, task=task),
                   endpoint=Endpoint(virtual_ips=(NetworkAttachment(network_id=network, addresses=(vip,)),)))


def task(tid: str, svc: Service, node: str | None, addr: str, *, state: TaskState = TaskState.RUNNING,
         desired: TaskState = TaskState.RUNNING, spec: TaskSpec | None = None) -> Task:
    network = svc.spec.task.networks[0].target
    return Task(id=tid, service_id=svc.id, slot=1, node_id=node, desired_state=desired, status=TaskStatus(state=state),
                spec=spec or svc.spec.task, networks=(NetworkAttachment(network_id=network, addresses=(addr,)),))


WEB = service("web", "nb", "10.0.1.2/24", container(secrets=("s1",), configs=("c1",)))
OLD_WEB_SPEC = TaskSpec(container=container(secrets=("s3",)), networks=WEB.spec.task.networks)
FRONTEND = service("frontend", "nf", "10.0.2.2/24", container())


@pytest.fixture
def store() -> Store:
    store = Store(LocalProposer())
    for obj in (Node(id="n1", addr="192.168.1.1", status=NodeStatus.READY),
                Node(id="n2", addr="192.168.1.2", status=NodeStatus.READY), BACK, FRONT, WEB, FRONTEND,
                sealed(Secret, "s1", "s1", b"s3cret"), sealed(Secret, "s2", "s2", b"unused"),
                sealed(Secret, "s3", "s3", b"old secret"), sealed(Config, "c1", "c1", b"conf"),
                task("w1", WEB, "n1", "10.0.1.3/24"),
                task("w2", WEB, "n2", "10.0.1.4/24", state=TaskState.STARTING),
                task("w0", WEB, "n1", "10.0.1.5/24", desired=TaskState.SHUTDOWN, spec=OLD_WEB_SPEC),  # still stopping
                task("wd", WEB, "n1", "10.0.1.6/24", state=TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN),
                task("wp", WEB, None, "10.0.1.7/24", state=TaskState.PENDING),
                task("f1", FRONTEND, "n2", "10.0.2.3/24", state=TaskState.STARTING)):
        store.create(obj)
    return store


def set_state(store: Store, task_id: str, state: TaskState, **changes: object) -> None:
    current = store.get(Task, task_id)
    assert current is not None
    store.update(dataclasses.replace(current, status=TaskStatus(state=state), **changes))  # type: ignore[arg-type]


def test_assignments_are_the_nodes_tasks_still_wanted_or_still_running(store: Store) -> None:
    _, payload = Dispatcher(store, unseal=unseal).assignments("n1")
    tasks = [from_dict(Task, item["task"]) for item in payload["tasks"]]
    assert [t.id for t in tasks] == ["w0", "w1"]  # not the ended wd, not the unassigned wp
    assert {item["service_name"] for item in payload["tasks"]} == {"web"}
    assert tasks[1] == store.get(Task, "w1")


def test_assignments_carry_the_networks_view_of_the_node(store: Store) -> None:
    _, payload = Dispatcher(store, unseal=unseal).assignments("n1")
    (back,) = payload["networks"]
    assert back["name"] == "back"
    assert back["peers"] == [{"IP": "10.0.1.4", "MAC": "02:42:0a:00:01:04", "VTEP": "192.168.1.2"}]
    assert back["services"][0]["Backends"] == ["10.0.1.3"]  # w2 is still starting


def test_only_the_secrets_and_configs_of_live_tasks_come_unsealed(store: Store) -> None:
    _, payload = Dispatcher(store, unseal=unseal).assignments("n1")
    assert payload["secrets"] == {"s1": base64.b64encode(b"s3cret").decode()}  # not s2, not w0's s3
    assert payload["configs"] == {"c1": base64.b64encode(b"conf").decode()}
    _, other = Dispatcher(store, unseal=unseal).assignments("n2")
    assert set(other["secrets"]) == {"s1"}


def test_a_dispatcher_without_an_unsealer_sends_no_content(store: Store) -> None:
    _, payload = Dispatcher(store).assignments("n1")
    assert payload["secrets"] == {} and payload["configs"] == {}


def test_a_secret_that_does_not_open_is_left_out_and_the_session_goes_on(store: Store,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    s1 = store.get(Secret, "s1")
    assert s1 is not None
    store.update(dataclasses.replace(s1, sealed=Sealer("another-cluster").seal(b"x", context="s1")))
    with caplog.at_level(logging.WARNING):
        _, payload = Dispatcher(store, unseal=unseal).assignments("n1")
    assert payload["secrets"] == {} and set(payload["configs"]) == {"c1"}
    assert "cannot unseal s1" in caplog.text


def test_a_node_without_tasks_gets_nothing(store: Store) -> None:
    store.create(Node(id="n3", addr="192.168.1.3"))
    _, payload = Dispatcher(store, unseal=unseal).assignments("n3")
    assert payload == {"tasks": [], "networks": [], "secrets": {}, "configs": {}}


def test_the_digest_is_stable_while_nothing_changes(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    assert dispatcher.assignments("n1")[0] == dispatcher.assignments("n1")[0]
    assert dispatcher.assignments("n1")[0] != dispatcher.assignments("n2")[0]


def test_the_digest_changes_when_a_peers_task_changes_state(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    before, _ = dispatcher.assignments("n1")
    set_state(store, "w2", TaskState.RUNNING)  # a backend now, on every node's VIP map
    after, payload = dispatcher.assignments("n1")
    assert after != before
    assert payload["networks"][0]["services"][0]["Backends"] == ["10.0.1.3", "10.0.1.4"]
    set_state(store, "w2", TaskState.SHUTDOWN, desired_state=TaskState.SHUTDOWN)  # gone: no peer any more
    gone, payload = dispatcher.assignments("n1")
    assert gone != after and payload["networks"][0]["peers"] == []


def test_the_digest_does_not_change_for_a_network_the_node_is_not_on(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    before, _ = dispatcher.assignments("n1")
    set_state(store, "f1", TaskState.RUNNING)
    assert dispatcher.assignments("n1")[0] == before
    assert dispatcher.assignments("n2")[0] != dispatcher.assignments("n1")[0]


def test_the_digest_changes_with_a_secrets_new_content(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    before, _ = dispatcher.assignments("n1")
    s1 = store.get(Secret, "s1")
    assert s1 is not None
    store.update(dataclasses.replace(s1, sealed=SEALER.seal(b"new", context="s1"), digest=content_digest(b"new")))
    after, payload = dispatcher.assignments("n1")
    assert after != before and payload["secrets"]["s1"] == base64.b64encode(b"new").decode()


def test_a_long_poll_wakes_when_a_peers_task_changes(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    known, _ = dispatcher.assignments("n1")

    async def run() -> tuple[str, float]:
        started = time.monotonic()
        waiting = asyncio.ensure_future(dispatcher.wait_for_change("n1", known, timeout=5.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        set_state(store, "w2", TaskState.RUNNING)
        dispatcher.notify()
        digest, _ = await waiting
        return digest, time.monotonic() - started

    digest, took = asyncio.run(run())
    assert digest != known and took < 1.0


def test_a_long_poll_returns_the_same_digest_after_its_timeout(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    known, _ = dispatcher.assignments("n1")
    assert asyncio.run(dispatcher.wait_for_change("n1", known, timeout=0.05))[0] == known


def test_reports_move_the_nodes_own_tasks_forward_only(store: Store) -> None:
    dispatcher = Dispatcher(store, unseal=unseal)
    dispatcher.report("n2", [StatusReport(task_id="w2", state=TaskState.RUNNING, message="started"),
                             StatusReport(task_id="w1", state=TaskState.FAILED),  # not n2's task
                             StatusReport(task_id="nope", state=TaskState.FAILED)])
    w1, w2 = store.get(Task, "w1"), store.get(Task, "w2")
    assert w2 is not None and w2.status.state is TaskState.RUNNING and w2.status.message == "started"
    assert w1 is not None and w1.status.state is TaskState.RUNNING
    dispatcher.report("n2", [StatusReport(task_id="w2", state=TaskState.STARTING)])  # stale: ignored
    assert store.get(Task, "w2").status.state is TaskState.RUNNING  # type: ignore[union-attr]
