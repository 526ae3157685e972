from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.model import Node, NodeAvailability
from orchestrator.store import NotLeader, Op, QuorumLost, Store, StoreError, VersionConflict
from orchestrator.store.raft import RaftOptions, RaftProposer
from tests.orchestrator.raft_cluster import RaftCluster, free_ports


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RaftCluster]:
    trio = RaftCluster(tmp_path)
    try:
        yield trio
    finally:
        trio.close()


def test_writes_replicate_and_followers_forward(cluster: RaftCluster) -> None:
    members = cluster.start_all()
    leader = cluster.leader_index()
    follower = members[(leader + 1) % 3]
    node = Store(follower).create(Node(id="n1", hostname="a"))
    assert node.version >= 1
    assert follower.machine.get(Node, "n1") == node  # read-your-writes on the proposing replica
    with pytest.raises(VersionConflict):
        Store(members[leader]).update(dataclasses.replace(node, version=node.version + 5))
    digests = cluster.wait_converged()
    assert len(set(digests)) == 1


def test_quorum_lost_with_two_of_three_down(cluster: RaftCluster) -> None:
    cluster.start_all()
    survivor = cluster.members[cluster.leader_index()]
    assert survivor is not None
    Store(survivor).create(Node(id="n1"))
    for i, member in enumerate(cluster.members):
        if member is not survivor:
            cluster.stop(i)
    time.sleep(0.3)
    with pytest.raises(QuorumLost, match="quorum lost: 2 of 3 managers unreachable"):
        survivor.propose([Op.create(Node(id="n2")).to_wire()], timeout=1.0)


def test_all_members_restart_with_the_same_state(cluster: RaftCluster) -> None:
    members = cluster.start_all()
    cluster.leader_index()
    store = Store(members[0])
    store.transact([Op.create(Node(id=f"n{i}", labels={"i": str(i)})) for i in range(20)])
    node = store.update(dataclasses.replace(store.get(Node, "n3"), availability=NodeAvailability.DRAIN))  # type: ignore[type-var]
    before = cluster.wait_converged()
    assert len(set(before)) == 1
    cluster.close()
    cluster.start_all()
    cluster.leader_index()
    after = cluster.wait_converged(at_least=node.version)
    assert after == before
    assert cluster.members[1].machine.get(Node, "n3") == node  # type: ignore[union-attr]


def test_force_new_cluster_keeps_the_state(cluster: RaftCluster, tmp_path: Path) -> None:
    members = cluster.start_all()
    cluster.leader_index()
    store = Store(members[1])
    for i in range(30):
        store.create(Node(id=f"n{i}"))
    digest = cluster.wait_converged()[0]
    cluster.close()
    (port,) = free_ports(1)
    single = RaftProposer.force_new_cluster(f"127.0.0.1:{port}", cluster.dirs[2])
    try:
        assert single.machine.digest() == digest
        assert single.members == [f"127.0.0.1:{port}"]
        Store(single).create(Node(id="after"))
        assert single.machine.get(Node, "after") is not None
    finally:
        single.close()


def test_a_member_added_at_runtime_catches_up(tmp_path: Path) -> None:
    a_port, b_port = free_ports(2)
    a_addr, b_addr = f"127.0.0.1:{a_port}", f"127.0.0.1:{b_port}"
    first = RaftProposer(a_addr, [], tmp_path / "a")
    second = None
    try:
        first.wait_for_leader()
        Store(first).create(Node(id="n1"))
        change = first.add_member(b_addr)
        second = RaftProposer(b_addr, [a_addr], tmp_path / "b")
        change.wait(10)
        Store(first).create(Node(id="n2"))
        deadline = time.monotonic() + 10
        while second.machine.revision != first.machine.revision and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second.machine.digest() == first.machine.digest()
        assert first.members == sorted([a_addr, b_addr])
    finally:
        first.close()
        if second is not None:
            second.close()


class _Storm:
    """Writers hammer random members while the leader is killed and restarted."""

    def __init__(self, cluster: RaftCluster) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.committed = 0
        self.failed = 0
        self.lock = threading.Lock()

    def write(self, writer: int) -> None:
        rng = random.Random(writer)
        i = 0
        while not self.stop.is_set():
            member = rng.choice(self.cluster.members)
            if member is None:
                continue
            i += 1
            ops = [Op.create(Node(id=f"w{writer}-{i}", hostname=f"h{i}"))]
            if i % 3 == 0:  # contended updates exercise deterministic rejections
                shared = member.machine.get(Node, "shared")
                if shared is not None:
                    ops.append(Op.update(dataclasses.replace(shared, labels={"by": f"{writer}-{i}"})))
            try:
                member.propose([op.to_wire() for op in ops], timeout=1.0)
                with self.lock:
                    self.committed += 1
            except (QuorumLost, NotLeader, VersionConflict, StoreError):
                with self.lock:
                    self.failed += 1

    def kill_leaders(self, rounds: int) -> None:
        for _ in range(rounds):
            time.sleep(0.6)
            index = self.cluster.leader_index()
            self.cluster.stop(index)
            time.sleep(0.3)
            self.cluster.start(index)
        time.sleep(0.5)
        self.stop.set()


@pytest.mark.parametrize("heartbeat", [0.05, 0.001], ids=["default", "1ms-append-entries"])
def test_write_storm_with_leader_restarts_keeps_replicas_identical(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, heartbeat: float
) -> None:
    caplog.set_level(logging.CRITICAL, logger="pysyncobj")
    cluster = RaftCluster(tmp_path, options=RaftOptions(heartbeat_period=heartbeat))
    try:
        _run_storm(cluster, caplog)
    finally:
        cluster.close()


def _run_storm(cluster: RaftCluster, caplog: pytest.LogCaptureFixture) -> None:
    members = cluster.start_all()
    cluster.leader_index()
    Store(members[0]).create(Node(id="shared"))
    storm = _Storm(cluster)
    writers = [threading.Thread(target=storm.write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    try:
        storm.kill_leaders(rounds=3)
    finally:
        storm.stop.set()
        for thread in writers:
            thread.join()
    digests = cluster.wait_converged()
    assert storm.committed > 100
    assert len(set(digests)) == 1, digests
    assert not [r for r in caplog.records if "diverged" in r.getMessage()]


def test_watch_on_a_follower_sees_commits_in_order(cluster: RaftCluster) -> None:
    members = cluster.start_all()
    leader = cluster.leader_index()
    follower = Store(members[(leader + 1) % 3])
    with follower.watch() as watch:
        store = Store(members[leader])
        for i in range(20):
            store.create(Node(id=f"n{i}"))
        events = [watch.get(timeout=5) for _ in range(20)]
    assert [e.obj.id for e in events] == [f"n{i}" for i in range(20)]  # type: ignore[union-attr]
    revisions = [e.revision for e in events]  # type: ignore[union-attr]
    assert revisions == sorted(revisions)
