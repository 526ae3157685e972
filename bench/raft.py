"""Benchmark: the Raft-replicated store, 3 members on loopback, journals on disk. Prints a table.

Beside it, a 3-member etcd cluster when `etcd` is on PATH (it is skipped with a note otherwise).
Usage: .venv/bin/python bench/raft.py [--writes N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests/

from orchestrator.model import Node  # noqa: E402
from orchestrator.store import NotLeader, Op, QuorumLost  # noqa: E402
from orchestrator.store.raft import RaftProposer  # noqa: E402
from tests.orchestrator.raft_cluster import RaftCluster, free_ports  # noqa: E402

Row = tuple[str, str, str]


def small_write(i: int) -> list[dict[str, object]]:
    return [Op.create(Node(id=f"n{i}", hostname=f"h{i}")).to_wire()]


def latency_rows(name: str, member: RaftProposer, count: int, offset: int) -> list[Row]:
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        member.propose(small_write(offset + i))
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    return [
        (name, "median commit latency", f"{statistics.median(latencies) * 1000:.2f} ms"),
        (name, "p99 commit latency", f"{p99 * 1000:.2f} ms"),
        (name, "sequential writes/s", f"{count / elapsed:,.0f}"),
    ]


def concurrent_rows(member: RaftProposer, *, threads: int, per_thread: int, offset: int) -> list[Row]:
    def writer(t: int) -> None:
        for i in range(per_thread):
            member.propose(small_write(offset + t * per_thread + i))

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return [("pyswarm", f"writes/s, {threads} concurrent writers", f"{threads * per_thread / elapsed:,.0f}")]


def batched_rows(member: RaftProposer, *, batch: int, batches: int, offset: int) -> list[Row]:
    start = time.perf_counter()
    for b in range(batches):
        ops = [w for i in range(batch) for w in small_write(offset + b * batch + i)]
        member.propose(ops)
    elapsed = time.perf_counter() - start
    return [("pyswarm", f"writes/s, {batch} per transaction", f"{batch * batches / elapsed:,.0f}")]


def failover_row(cluster: RaftCluster, offset: int) -> Row:
    """Kill the leader; time until a survivor commits a write."""
    leader = cluster.leader_index()
    survivor = cluster.members[(leader + 1) % 3]
    assert survivor is not None
    start = time.perf_counter()
    cluster.stop(leader)
    attempt = 0
    while True:
        attempt += 1  # a fresh id each time: a timed-out attempt may still commit
        try:
            survivor.propose(small_write(offset + attempt), timeout=0.5)
            break
        except (QuorumLost, NotLeader):
            if time.perf_counter() - start > 10:
                statuses = [m.status() for m in cluster.running()]
                raise RuntimeError(f"no new leader after 10 s: {statuses}") from None
    return ("pyswarm", "leader failover (kill -> next commit)", f"{time.perf_counter() - start:.2f} s")


def bench_pyswarm(writes: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as tmp:
        cluster = RaftCluster(Path(tmp))
        try:
            members = cluster.start_all()
            leader = members[cluster.leader_index()]
            follower = members[(members.index(leader) + 1) % 3]
            for i in range(200):  # warm up connections
                leader.propose(small_write(10_000_000 + i))
            rows = latency_rows("pyswarm", leader, writes, 0)
            rows += [
                (n, f"{what} (via follower)", v) for n, what, v in latency_rows("pyswarm", follower, writes, 10**6)
            ]
            rows += concurrent_rows(leader, threads=8, per_thread=writes // 8, offset=2 * 10**6)
            rows += batched_rows(leader, batch=100, batches=max(1, writes // 100), offset=3 * 10**6)
            rows += batched_rows(leader, batch=1000, batches=max(1, writes // 1000), offset=4 * 10**6)
            rows.append(failover_row(cluster, 5 * 10**6))
            return rows
        finally:
            cluster.close()


def bench_etcd(writes: int) -> list[Row]:
    etcd, etcdctl = shutil.which("etcd"), shutil.which("etcdctl")
    if etcd is None or etcdctl is None:
        return [("etcd", "skipped", "etcd/etcdctl not installed")]
    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp:
        ports = free_ports(6)
        peers = ",".join(f"e{i}=http://127.0.0.1:{ports[2 * i]}" for i in range(3))
        procs = [_start_etcd(etcd, i, ports, peers, Path(tmp)) for i in range(3)]
        try:
            endpoint = f"127.0.0.1:{ports[1]}"
            _wait(lambda: _etcdctl(etcdctl, endpoint, "put", "warm", "x").returncode == 0, 20)
            return _etcd_rows(etcdctl, endpoint, writes)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def _start_etcd(etcd: str, i: int, ports: list[int], peers: str, root: Path) -> subprocess.Popen[bytes]:
    peer, client = ports[2 * i], ports[2 * i + 1]
    args = [
        etcd, "--name", f"e{i}", "--data-dir", str(root / f"e{i}"),
        "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--initial-cluster", peers, "--initial-cluster-state", "new",
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _etcdctl(etcdctl: str, endpoint: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([etcdctl, "--endpoints", endpoint, *args], input=stdin, capture_output=True, check=False)


def _etcd_rows(etcdctl: str, endpoint: str, writes: int) -> list[Row]:
    # etcdctl has no bulk put: a `txn` with many puts is one Raft entry, like our batched transactions.
    batch = 100
    body = "\n\n" + "\n".join(f'put k{i} "v"' for i in range(batch)) + "\n\n"
    start = time.perf_counter()
    rounds = max(1, writes // batch // 10)
    for _ in range(rounds):
        _etcdctl(etcdctl, endpoint, "txn", stdin=body.encode())
    elapsed = time.perf_counter() - start
    per_put = []
    for i in range(20):
        t0 = time.perf_counter()
        _etcdctl(etcdctl, endpoint, "put", f"lat{i}", "v")
        per_put.append(time.perf_counter() - t0)
    return [
        ("etcd", f"writes/s, {batch} per txn (etcdctl per txn)", f"{rounds * batch / elapsed:,.0f}"),
        ("etcd", "median etcdctl put (incl. process start)", f"{statistics.median(per_put) * 1000:.1f} ms"),
    ]


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("etcd did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    rows = bench_pyswarm(args.writes) + bench_etcd(args.writes)
    width = max(len(r[1]) for r in rows)
    print(f"{'store':<8} {'measure':<{width}} {'value':>14}")
    for store, what, value in rows:
        print(f"{store:<8} {what:<{width}} {value:>14}")


if __name__ == "__main__":
    main()
