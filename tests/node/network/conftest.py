"""Fixtures for network driver tests: a NetworkService on its own roots, nft table and event loop, plus
client namespaces joined to the host by a veth. Everything is named from a random token and removed at
teardown, which then checks that no link, mount or nft table of the test is left."""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from node.config import DaemonConfig
from node.network.netns import create_namespace, is_namespace, remove_namespace
from node.network.service import NetworkService


@dataclass
class Client:
    """A namespace standing in for another machine, joined to the host by a veth with a /30 between them."""

    path: Path
    host_ifname: str
    host_ip: str
    client_ip: str


@dataclass
class Harness:
    service: NetworkService
    loop: asyncio.AbstractEventLoop
    base: Path
    token: str
    procs: list[subprocess.Popen[bytes]]
    clients: list[Client]

    def spawn(self, path: Path, *cmd: str) -> subprocess.Popen[bytes]:
        """A process inside the namespace at `path`, killed at teardown."""
        proc = subprocess.Popen(["nsenter", f"--net={path}", *cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def client(self, tag: str = "a") -> Client:
        client = make_client(self.base, self.token, tag)
        self.clients.append(client)
        return client

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def sandbox(self, network: str, *, name: str, **kwargs: Any) -> tuple[str, Path, dict[str, Any]]:
        cid = secrets.token_hex(32)
        path = self.service.create_sandbox(cid)
        settings = self.service.connect(cid, network, name=name, **kwargs)
        return cid, path, settings

    def restart(self) -> None:
        """Stop the service (as a daemon stop would) and start a fresh one on the same state."""
        self.run(self.service.stop())
        self.service = NetworkService(self.service.config)
        self.run(self.service.start())


def in_ns(path: Path, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *cmd], capture_output=True, text=True, timeout=timeout,
                          check=False)


def nslookup(path: Path, name: str) -> list[str]:
    """Addresses `busybox nslookup NAME 127.0.0.11` prints from inside the sandbox ([] on failure)."""
    out = in_ns(path, "busybox", "nslookup", name, "127.0.0.11")
    if out.returncode != 0:
        return []
    lines = out.stdout.split("Name:", 1)[-1].splitlines() if "Name:" in out.stdout else []
    return [line.split()[-1] for line in lines if line.startswith("Address")]


def ping(path: Path, address: str) -> bool:
    return in_ns(path, "ping", "-c1", "-W1", address).returncode == 0


def make_client(base: Path, token: str, tag: str) -> Client:
    path = base / f"client-{tag}"
    create_namespace(path)
    host_ifname = f"pc{token[:6]}{tag}"[:15]
    third, fourth = random.randrange(0, 256), random.randrange(0, 64) * 4
    second = random.randrange(200, 250)
    host_ip, client_ip = f"10.{second}.{third}.{fourth + 1}", f"10.{second}.{third}.{fourth + 2}"
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_ifname, kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(path)})
        idx = ipr.link_lookup(ifname=host_ifname)[0]
        ipr.addr("add", index=idx, address=host_ip, prefixlen=30)
        ipr.link("set", index=idx, state="up")
    with IPRoute(netns=str(path)) as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=idx, address=client_ip, prefixlen=30)
        ipr.link("set", index=idx, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=host_ip)
    return Client(path=path, host_ifname=host_ifname, host_ip=host_ip, client_ip=client_ip)


def host_links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get("IFLA_IFNAME") for link in ipr.get_links()}


def our_objects(service: NetworkService) -> set[str]:
    names = {n.iface for n in service.list_networks() if n.iface}
    names |= {ep.host_ifname for r in service._containers.values() for ep in r.endpoints if ep.host_ifname}
    return {n for n in names if n}


@pytest.fixture
def harness() -> Iterator[Harness]:
    token = secrets.token_hex(4)
    base = Path(tempfile.mkdtemp(prefix=f"pnn{token}", dir="/tmp"))
    config = DaemonConfig(data_root=base / "root", exec_root=base / "run", nft_table=f"pnn{token}")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    h = Harness(service=NetworkService(config), loop=loop, base=base, token=token, procs=[], clients=[])
    seen: set[str] = set()
    try:
        h.run(h.service.start())
        yield h
    finally:
        for proc in h.procs:
            proc.kill()
            proc.wait()
        for client in h.clients:
            subprocess.run(["ip", "link", "del", client.host_ifname], capture_output=True, check=False)
            remove_namespace(client.path)
        seen |= our_objects(h.service)
        for cid in list(h.service._containers):
            h.service.release(cid)
        for network in h.service.list_networks():
            if not network.is_predefined:
                h.service.remove_network(network.id)
        h.run(h.service.stop())
        leaked = _leftovers(h, seen)
        _force_clean(h, seen)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        shutil.rmtree(base, ignore_errors=True)
        assert not leaked, f"test leaked: {leaked}"


def _leftovers(h: Harness, seen: set[str]) -> list[str]:
    found = [f"link {name}" for name in seen & host_links()]
    found += [f"link {name}" for name in host_links() if name.startswith(f"pc{h.token[:6]}")]
    found += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
              if str(h.base) in line.split()[1]]
    if subprocess.run(["nft", "list", "table", "inet", h.service.table], capture_output=True).returncode == 0:
        found.append(f"nft table inet {h.service.table}")
    return found


def _force_clean(h: Harness, seen: set[str]) -> None:
    subprocess.run(["nft", "delete", "table", "inet", h.service.table], capture_output=True, check=False)
    for name in seen | {n for n in host_links() if n.startswith(f"pc{h.token[:6]}")}:
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
    for line in Path("/proc/mounts").read_text().splitlines():
        mount_point = line.split()[1]
        if str(h.base) in mount_point and is_namespace(Path(mount_point)):
            remove_namespace(Path(mount_point))


@pytest.fixture
def client_ns() -> Iterator[Client]:
    """One client namespace (another machine) joined to the host by a veth; removed afterwards."""
    token = secrets.token_hex(4)
    base = Path(tempfile.mkdtemp(prefix=f"pnc{token}", dir="/tmp"))
    client = make_client(base, token, "c")
    try:
        yield client
    finally:
        subprocess.run(["ip", "link", "del", client.host_ifname], capture_output=True, check=False)
        remove_namespace(client.path)
        shutil.rmtree(base, ignore_errors=True)
