"""Network throughput: iperf3 between two sandboxes over a user bridge, and through a published port,
each beside a plain veth pair between two namespaces (the raw figure), interleaved run by run.

    .venv/bin/python bench/network.py [--runs 5] [--seconds 3]

Everything lives in namespaces this script makes (pinned under a temporary directory) and in its own
nftables table; all of it is removed at the end. Traffic stays inside those namespaces and the host's
side of a test veth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.config import DaemonConfig  # noqa: E402
from node.network.netns import create_namespace, remove_namespace  # noqa: E402
from node.network.service import NetworkService  # noqa: E402


def iperf(client_ns: Path, server_ns: Path | None, target: str, port: int, seconds: int, *,
          server_port: int = 5201) -> float:
    """Gbit/s from one iperf3 run: server in `server_ns` on `server_port`, client aimed at target:port."""
    prefix = ["nsenter", f"--net={server_ns}"] if server_ns else []
    server = subprocess.Popen([*prefix, "iperf3", "-s", "-1", "-p", str(server_port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_listening(server_ns, server_port)
        out = subprocess.run(["nsenter", f"--net={client_ns}", "iperf3", "-c", target, "-p", str(port), "-t",
                              str(seconds), "-J"], capture_output=True, text=True, timeout=seconds + 20)
        data = json.loads(out.stdout or "{}")
        if "sum_received" in data.get("end", {}):
            return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
        raise RuntimeError(f"iperf3 to {target}:{port} failed: {data.get('error', out.stderr)}")
    finally:
        server.kill()
        server.wait()


def wait_listening(netns: Path | None, port: int) -> None:
    prefix = ["nsenter", f"--net={netns}"] if netns else []
    for _ in range(100):
        out = subprocess.run([*prefix, "ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"iperf3 server did not listen on {port}")


@contextmanager
def veth_pair(base: Path, token: str) -> Iterator[tuple[Path, Path]]:
    a, b = base / "veth-a", base / "veth-b"
    create_namespace(a)
    create_namespace(b)
    try:
        with IPRoute(netns=str(a)) as ipr:
            ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(b)})
        for path, addr in ((a, "10.254.254.1"), (b, "10.254.254.2")):
            with IPRoute(netns=str(path)) as ipr:
                idx = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=idx, address=addr, prefixlen=30)
                ipr.link("set", index=idx, state="up")
        yield a, b
    finally:
        remove_namespace(a)
        remove_namespace(b)


@contextmanager
def client_namespace(base: Path, token: str) -> Iterator[tuple[Path, str]]:
    """A namespace joined to the host by a veth: (its path, the host's address on that veth)."""
    path, host_if = base / "client", f"pb{token}"
    create_namespace(path)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(path)})
            idx = ipr.link_lookup(ifname=host_if)[0]
            ipr.addr("add", index=idx, address="10.254.253.1", prefixlen=30)
            ipr.link("set", index=idx, state="up")
        with IPRoute(netns=str(path)) as ipr:
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=idx, address="10.254.253.2", prefixlen=30)
            ipr.link("set", index=idx, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway="10.254.253.1")
        yield path, "10.254.253.1"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        remove_namespace(path)


@contextmanager
def network_service(base: Path, token: str) -> Iterator[NetworkService]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = DaemonConfig(data_root=base / "root", exec_root=base / "run", nft_table=f"pnbench{token}")
    service = NetworkService(config)
    asyncio.run_coroutine_threadsafe(service.start(), loop).result()
    try:
        yield service
    finally:
        for cid in list(service._containers):
            service.release(cid)
        for network in service.list_networks():
            if not network.is_predefined:
                service.remove_network(network.id)
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    token = secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix="pnbench", dir="/tmp"))
    try:
        with veth_pair(base, token) as (va, vb), network_service(base, token) as svc, \
                client_namespace(base, token) as (client, host_ip):
            net = svc.create_network(f"bench{token}")
            server_id, cids = secrets.token_hex(32), secrets.token_hex(32)
            server, peer = svc.create_sandbox(server_id), svc.create_sandbox(cids)
            server_ip = svc.connect(server_id, net.name, name="server")["IPAddress"]
            svc.connect(cids, net.name, name="client")
            host_port = int(svc.publish(server_id, [{"HostPort": "", "ContainerPort": 5201}])[0]["HostPort"])
            cases: dict[str, Callable[[], float]] = {
                "veth pair (raw)": lambda: iperf(va, vb, "10.254.254.2", 5201, args.seconds),
                "user bridge, sandbox to sandbox": lambda: iperf(peer, server, server_ip, 5201, args.seconds),
                "published port, client ns -> host:port": lambda: iperf(client, server, host_ip, host_port,
                                                                        args.seconds),
            }
            results: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.runs):
                for name, run in cases.items():
                    results[name].append(run())
            report(results, args.runs, args.seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(results: dict[str, list[float]], runs: int, seconds: int) -> None:
    raw = statistics.median(results["veth pair (raw)"])
    targets = {"user bridge, sandbox to sandbox": 0.9, "published port, client ns -> host:port": 0.8}
    print(f"iperf3 TCP, {runs} interleaved runs of {seconds}s each, median Gbit/s")
    print(f"{'path':<42}{'median':>9}{'min':>8}{'max':>8}{'× veth':>9}{'target':>9}")
    for name, values in results.items():
        median = statistics.median(values)
        target = f"≥ {targets[name]}" if name in targets else ""
        print(f"{name:<42}{median:>9.2f}{min(values):>8.2f}{max(values):>8.2f}{median / raw:>9.2f}{target:>9}")


if __name__ == "__main__":
    main()
