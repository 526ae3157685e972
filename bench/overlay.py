"""Overlay throughput: iperf3 sandbox to sandbox across two hosts over our overlay network, beside (a) the
raw veth between the same two hosts and (b) a VXLAN link built by hand with `ip` between them (the
kernel's own limit for this data path), interleaved run by run. Our control plane must add nothing to the
data path: the target is ≥ 0.95 × the hand-built VXLAN.

    .venv/bin/python bench/overlay.py [--runs 5] [--seconds 3]

The two hosts are network namespaces joined by a veth (MTU 1500), each with its own NetworkService whose
work runs inside it, as in tests/node/network/test_overlay.py. Everything lives in namespaces this script
makes under a temporary directory and is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.network import iperf  # noqa: E402
from node.config import DaemonConfig  # noqa: E402
from node.network import overlay  # noqa: E402
from node.network.netns import create_namespace, remove_namespace, run_in_namespace  # noqa: E402
from node.network.service import NetworkService  # noqa: E402

T = TypeVar("T")
UNDERLAY = ("10.254.252.1", "10.254.252.2")
_libc = ctypes.CDLL(None, use_errno=True)


class Host:
    """A namespace with a NetworkService living in it (its loop thread entered the namespace first)."""

    def __init__(self, path: Path, base: Path, token: str, address: str) -> None:
        self.path, self.address = path, address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        config = DaemonConfig(data_root=base / f"{path.name}.d" / "root", exec_root=base / f"{path.name}.d" / "run",
                              nft_table=f"pnbo{token}")
        self.service = NetworkService(config)
        asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(30)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        self.loop.run_forever()

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return run_in_namespace(self.path, lambda: func(*args, **kwargs))

    def close(self) -> None:
        for cid in list(self.service._containers):
            self.call(self.service.release, cid)
        for network in self.service.list_networks():
            if not network.is_predefined:
                self.call(self.service.remove_network, network.id)
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextmanager
def two_hosts(base: Path, token: str) -> Iterator[tuple[Host, Host]]:
    paths = (base / "host-a", base / "host-b")
    with ExitStack() as stack:
        for path in paths:
            create_namespace(path)
            stack.callback(remove_namespace, path)
        with IPRoute(netns=str(paths[0])) as ipr:
            ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(paths[1])})
        for path, address in zip(paths, UNDERLAY, strict=True):
            with IPRoute(netns=str(path)) as ipr:
                idx = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=idx, address=address, prefixlen=24)
                ipr.link("set", index=idx, state="up")
        hosts = []
        for path, address in zip(paths, UNDERLAY, strict=True):
            host = Host(path, base, token, address)
            stack.callback(host.close)
            hosts.append(host)
        yield hosts[0], hosts[1]


def sh(netns: Path, *cmd: str) -> None:
    subprocess.run(["nsenter", f"--net={netns}", *cmd], check=True, capture_output=True)


def hand_built_vxlan(base: Path, a: Host, b: Host) -> tuple[Path, Path, str]:
    """VNI 42 on 10.254.251.0/24 made with `ip` and `bridge` alone: bridge + vxlan (nolearning, static flood
    entry) in each host, a veth to a namespace standing in for a container. Returns (client, server, ip)."""
    ends = []
    for index, (host, other) in enumerate(((a, b), (b, a))):
        ns = base / f"hand-{index}"
        create_namespace(ns)
        ends.append(ns)
        sh(host.path, "ip", "link", "add", "hbr0", "type", "bridge")
        sh(host.path, "ip", "link", "add", "hvx0", "mtu", "1450", "type", "vxlan", "id", "42", "dstport", "4789",
           "local", host.address, "nolearning")
        sh(host.path, "ip", "link", "set", "hvx0", "master", "hbr0", "up")
        sh(host.path, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "hvx0", "dst", other.address)
        sh(host.path, "ip", "link", "add", "hveth0", "mtu", "1450", "type", "veth", "peer", "name", "eth0",
           "netns", str(ns))
        sh(host.path, "ip", "link", "set", "hveth0", "master", "hbr0", "up")
        sh(host.path, "ip", "link", "set", "hbr0", "up")
        sh(ns, "ip", "link", "set", "eth0", "mtu", "1450", "up")
        sh(ns, "ip", "addr", "add", f"10.254.251.{10 + index}/24", "dev", "eth0")
    return ends[0], ends[1], "10.254.251.11"


def our_overlay(a: Host, b: Host, token: str) -> tuple[Path, Path, str]:
    name = f"bench{token}"
    endpoints = []
    for index, host in enumerate((a, b)):
        host.call(host.service.create_network, name, driver="overlay", subnet="10.254.250.0/24",
                  options={overlay.VNI_OPT: "43", overlay.LOCAL_OPT: host.address})
        cid = secrets.token_hex(32)
        path = host.call(host.service.create_sandbox, cid)
        settings = host.call(host.service.connect, cid, name, name=f"t{index}",
                             ipv4_address=f"10.254.250.{10 + index}")
        endpoints.append((path, settings))
    for host, (_, settings), other in ((a, endpoints[1], b), (b, endpoints[0], a)):
        host.call(host.service.add_peers, name, [{"IP": settings["IPAddress"], "MAC": settings["MacAddress"],
                                                  "VTEP": other.address}])
    return endpoints[0][0], endpoints[1][0], endpoints[1][1]["IPAddress"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    token = secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix="pnbo", dir="/tmp"))
    hand: list[Path] = []
    try:
        with two_hosts(base, token) as (a, b):
            h_client, h_server, h_ip = hand_built_vxlan(base, a, b)
            hand = [h_client, h_server]
            o_client, o_server, o_ip = our_overlay(a, b, token)
            cases: dict[str, Callable[[], float]] = {
                "veth between the hosts (raw)": lambda: iperf(a.path, b.path, UNDERLAY[1], 5201, args.seconds),
                "hand-built VXLAN (ip, bridge)": lambda: iperf(h_client, h_server, h_ip, 5201, args.seconds),
                "overlay network, task to task": lambda: iperf(o_client, o_server, o_ip, 5201, args.seconds),
            }
            results: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.runs):
                for name, run in cases.items():
                    results[name].append(run())
            report(results, args.runs, args.seconds)
    finally:
        for ns in hand:
            remove_namespace(ns)
        shutil.rmtree(base, ignore_errors=True)


def report(results: dict[str, list[float]], runs: int, seconds: int) -> None:
    raw = statistics.median(results["veth between the hosts (raw)"])
    hand = statistics.median(results["hand-built VXLAN (ip, bridge)"])
    print(f"iperf3 TCP, {runs} interleaved runs of {seconds}s each, median Gbit/s")
    print(f"{'path':<34}{'median':>9}{'min':>8}{'max':>8}{'× veth':>9}{'× hand':>9}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<34}{median:>9.2f}{min(values):>8.2f}{max(values):>8.2f}{median / raw:>9.2f}"
              f"{median / hand:>9.2f}")
    print("target: overlay ≥ 0.95 × hand-built VXLAN")


if __name__ == "__main__":
    main()
