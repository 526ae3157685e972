"""Benchmark: the Raft-replicated store, 3 members on loopback, journals on disk. Prints a table.

Beside it, a 3-member etcd cluster when `etcd` is on PATH (Debian's etcd-server; skipped with a note otherwise),
measured in-process as ours is: puts through its v3 JSON gateway (`POST /v3/kv/put`) over keep-alive HTTP
connections, not one `etcdctl` process per put. Its members' data dirs live in a temporary directory, removed
with them at the end.
Usage: .venv/bin/python bench/raft.py [--writes N]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

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
    """The same measures on a 3-member etcd, in-process too: puts over its v3 JSON gateway, keep-alive HTTP."""
    etcd = shutil.which("etcd")
    if etcd is None:
        return [("etcd", "skipped", "etcd not installed")]
    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp:
        ports = free_ports(6)
        peers = ",".join(f"e{i}=http://127.0.0.1:{ports[2 * i]}" for i in range(3))
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(3):
                procs.append(_start_etcd(etcd, i, ports, peers, Path(tmp)))
            urls = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(3)]
            with httpx.Client(trust_env=False, timeout=5) as probe:
                _wait(lambda: _try_put(probe, urls[0], "warm"), 20, logs=Path(tmp))
                leader = _etcd_leader_index(probe, urls)
            return _etcd_rows(urls, leader, procs, writes)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _start_etcd(etcd: str, i: int, ports: list[int], peers: str, root: Path) -> subprocess.Popen[bytes]:
    peer, client = ports[2 * i], ports[2 * i + 1]
    args = [
        etcd, "--name", f"e{i}", "--data-dir", str(root / f"e{i}"),
        "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--initial-cluster", peers, "--initial-cluster-state", "new",
        "--max-txn-ops", "1000",  # its default (128) is below our largest transaction
    ]  # fmt: skip
    with open(root / f"e{i}.log", "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _put(client: httpx.Client, url: str, key: str, *, timeout: float | None = None) -> None:
    """One put through the gateway; raises on any answer but 200 (no leader, leader changed, timeout)."""
    body = {"key": _b64(key), "value": _b64("v")}
    response = client.post(f"{url}/v3/kv/put", json=body, timeout=timeout if timeout is not None else client.timeout)
    response.raise_for_status()


def _try_put(client: httpx.Client, url: str, key: str, *, timeout: float | None = None) -> bool:
    try:
        _put(client, url, key, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def _etcd_leader_index(client: httpx.Client, urls: list[str]) -> int:
    """Which member leads: the one whose own id is the leader its status names."""
    for index, url in enumerate(urls):
        status = client.post(f"{url}/v3/maintenance/status", json={}).raise_for_status().json()
        header = status.get("header") or {}
        if str(header.get("member_id") or header.get("memberId")) == str(status.get("leader")):
            return index
    raise RuntimeError("no etcd member reports itself as leader")


def _etcd_latency_rows(client: httpx.Client, url: str, count: int, prefix: str) -> list[Row]:
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        _put(client, url, f"{prefix}{i}")
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    return [
        ("etcd", "median commit latency", f"{statistics.median(latencies) * 1000:.2f} ms"),
        ("etcd", "p99 commit latency", f"{p99 * 1000:.2f} ms"),
        ("etcd", "sequential writes/s", f"{count / elapsed:,.0f}"),
    ]


def _etcd_concurrent_rows(url: str, *, threads: int, per_thread: int) -> list[Row]:
    """`threads` writers, each with its own keep-alive client, as pyswarm's threads share one member."""
    clients = [httpx.Client(trust_env=False, timeout=5) for _ in range(threads)]

    def writer(t: int) -> None:
        for i in range(per_thread):
            _put(clients[t], url, f"c{t}-{i}")

    try:
        with ThreadPoolExecutor(threads) as pool:
            start = time.perf_counter()
            list(pool.map(writer, range(threads)))
            elapsed = time.perf_counter() - start
    finally:
        for client in clients:
            client.close()
    return [("etcd", f"writes/s, {threads} concurrent writers", f"{threads * per_thread / elapsed:,.0f}")]


def _etcd_batched_rows(client: httpx.Client, url: str, *, batch: int, batches: int, prefix: str) -> list[Row]:
    """A txn of `batch` puts is one Raft entry, as one of our transactions is."""
    start = time.perf_counter()
    for b in range(batches):
        ops = [{"requestPut": {"key": _b64(f"{prefix}{b}-{i}"), "value": _b64("v")}} for i in range(batch)]
        client.post(f"{url}/v3/kv/txn", json={"success": ops}).raise_for_status()
    elapsed = time.perf_counter() - start
    return [("etcd", f"writes/s, {batch} per transaction", f"{batch * batches / elapsed:,.0f}")]


def _etcd_failover_row(client: httpx.Client, urls: list[str], leader: int,
                       procs: list[subprocess.Popen[bytes]]) -> Row:  # fmt: skip
    """Kill the leader's process; time until a survivor commits a put."""
    survivor = urls[(leader + 1) % 3]
    start = time.perf_counter()
    procs[leader].kill()
    procs[leader].wait()
    attempt = 0
    while True:
        attempt += 1
        if _try_put(client, survivor, f"failover{attempt}", timeout=0.5):
            break
        if time.perf_counter() - start > 10:
            raise RuntimeError("no etcd put succeeded within 10 s of killing the leader")
    return ("etcd", "leader failover (kill -> next commit)", f"{time.perf_counter() - start:.2f} s")


def _etcd_rows(urls: list[str], leader: int, procs: list[subprocess.Popen[bytes]], writes: int) -> list[Row]:
    follower = (leader + 1) % 3
    with httpx.Client(trust_env=False, timeout=5) as client:
        for i in range(200):  # warm up the connections, as on the pyswarm side
            _put(client, urls[leader], f"warm{i}")
            _put(client, urls[follower], f"warmf{i}")
        rows = _etcd_latency_rows(client, urls[leader], writes, "s")
        rows += [(n, f"{what} (via follower)", v)
                 for n, what, v in _etcd_latency_rows(client, urls[follower], writes, "f")]
        rows += _etcd_concurrent_rows(urls[leader], threads=8, per_thread=writes // 8)
        rows += _etcd_batched_rows(client, urls[leader], batch=100, batches=max(1, writes // 100), prefix="b")
        rows += _etcd_batched_rows(client, urls[leader], batch=1000, batches=max(1, writes // 1000), prefix="B")
        rows.append(_etcd_failover_row(client, urls, leader, procs))
    return rows


def _wait(predicate: Callable[[], bool], timeout: float, *, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = "".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-5:]) + "\n"
                           for log in sorted(logs.glob("e*.log")))
            raise TimeoutError(f"etcd did not start\n{tail}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a kill still stops etcd and removes the temp dirs
    print_table(bench_pyswarm(args.writes) + bench_etcd(args.writes))


def print_table(rows: list[Row]) -> None:
    """One line per measure, each store's value beside the other's; a skipped store's reason below."""
    stores = list(dict.fromkeys(store for store, _, _ in rows))
    values = {(store, what): value for store, what, value in rows if what != "skipped"}
    measures = list(dict.fromkeys(what for _, what, _ in rows if what != "skipped"))
    width = max(len(m) for m in measures)
    print(f"{'measure':<{width}}" + "".join(f" {store:>14}" for store in stores))
    for what in measures:
        print(f"{what:<{width}}" + "".join(f" {values.get((store, what), '-'):>14}" for store in stores))
    for store, what, value in rows:
        if what == "skipped":
            print(f"{store}: skipped ({value})")


if __name__ == "__main__":
    main()
