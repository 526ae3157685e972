"""Overlay networks across hosts: two network namespaces stand in for two machines joined by an underlay
link, each with its own NetworkService living inside it (its netlink and nft calls are made from threads
that entered that namespace); sandboxes with busybox processes stand in for containers. Then the same
through the API of real `pynode daemon`s on lab hosts.

Pure decisions (options, peers, FDB plan, nft rendering, DNS answers) get fast unit tests first."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyroute2 import IPRoute

from node.config import DaemonConfig
from node.errors import Conflict, InvalidArgument
from node.network import nft, overlay, vip
from node.network.netns import create_namespace, remove_namespace, run_in_namespace
from node.network.overlay import FdbEntry, Peer
from node.network.service import NetworkService
from node.network.vip import EndpointMode, ServiceEntry
from tests.node.network.conftest import in_ns, nslookup, ping

T = TypeVar("T")
SUBNET = IPv4Network("10.240.8.0/24")
GATEWAY = IPv4Address("10.240.8.1")


# --- pure decisions ------------------------------------------------------------------------------
def _opts(**extra: str) -> dict[str, str]:
    return {overlay.VNI_OPT: "4097", **extra}


def test_settings_need_one_vni_and_check_addresses() -> None:
    got = overlay.parse_settings(_opts(**{overlay.MTU_OPT: "1400", overlay.LOCAL_OPT: "10.77.0.2",
                                          overlay.NODE_IP_OPT: "10.240.8.254"}), SUBNET, GATEWAY)
    assert got == overlay.OverlaySettings(vni=4097, mtu=1400, local=IPv4Address("10.77.0.2"),
                                          node_ip=IPv4Address("10.240.8.254"))
    for bad, words in [({}, "is required"), (_opts(**{overlay.VNI_OPT: "1,2"}), "exactly one VNI"),
                       (_opts(**{overlay.VNI_OPT: "16777216"}), "1 to 16777215"),
                       (_opts(**{overlay.MTU_OPT: "9x"}), "MTU"),
                       (_opts(**{overlay.NODE_IP_OPT: "10.240.8.1"}), "other than the gateway"),
                       (_opts(**{overlay.NODE_IP_OPT: "10.1.1.1"}), "not a usable address"),
                       (_opts(**{overlay.LOCAL_OPT: "nope"}), "invalid")]:
        with pytest.raises(InvalidArgument, match=words):
            overlay.parse_settings(bad, SUBNET, GATEWAY)


def test_peers_are_validated_and_merged_by_address() -> None:
    peers = overlay.parse_peers([{"IP": "10.240.8.5", "MAC": "02:42:0A:F0:08:05", "VTEP": "10.77.0.3"}], SUBNET)
    assert peers == [Peer(ip="10.240.8.5", mac="02:42:0a:f0:08:05", vtep="10.77.0.3")]
    moved = Peer(ip="10.240.8.5", mac="02:42:0a:f0:08:05", vtep="10.77.0.4")
    other = Peer(ip="10.240.8.3", mac="02:42:0a:f0:08:03", vtep="10.77.0.3")
    assert overlay.merge_peers(peers, [moved, other]) == (other, moved)
    for bad, words in [({"IP": "10.9.9.9", "MAC": "02:42:00:00:00:01", "VTEP": "10.77.0.3"}, "not in the"),
                       ({"IP": "10.240.8.5", "MAC": "ff:ff:ff:ff:ff:ff", "VTEP": "10.77.0.3"}, "unicast"),
                       ({"IP": "10.240.8.5", "MAC": "02:42:00:00:00:01"}, "VTEP"), ("x", "expected an object")]:
        with pytest.raises(InvalidArgument, match=words):
            overlay.parse_peers([bad], SUBNET)
    with pytest.raises(InvalidArgument, match="list"):
        overlay.parse_peers({"IP": "10.240.8.5"}, SUBNET)


def test_fdb_plan_floods_once_per_vtep() -> None:
    peers = [Peer(ip="10.240.8.5", mac="02:42:0a:f0:08:05", vtep="10.77.0.3"),
             Peer(ip="10.240.8.6", mac="02:42:0a:f0:08:06", vtep="10.77.0.3"),
             Peer(ip="10.240.8.7", mac="02:42:0a:f0:08:07", vtep="10.77.0.4")]
    assert overlay.plan_fdb(peers) == {
        FdbEntry("02:42:0a:f0:08:05", "10.77.0.3"), FdbEntry("02:42:0a:f0:08:06", "10.77.0.3"),
        FdbEntry("02:42:0a:f0:08:07", "10.77.0.4"), FdbEntry(overlay.BUM_MAC, "10.77.0.3"),
        FdbEntry(overlay.BUM_MAC, "10.77.0.4")}
    assert overlay.plan_fdb([]) == set()


def test_service_records_resolve_vip_dnsrr_and_tasks() -> None:
    web = vip.parse_service("Web", {"VIP": "10.240.8.2", "Backends": ["10.240.8.5", "10.240.8.6", "10.240.8.5"],
                                    "Aliases": ["www"]}, SUBNET)
    assert web == ServiceEntry(name="web", vip="10.240.8.2", backends=("10.240.8.5", "10.240.8.6"), aliases=("www",))
    db = vip.parse_service("db", {"EndpointMode": "dnsrr", "Backends": ["10.240.8.9"]}, SUBNET)
    entries = [web, db]
    assert vip.resolve(entries, "web", "front") == [IPv4Address("10.240.8.2")]
    assert vip.resolve(entries, "www.front.", "front") == [IPv4Address("10.240.8.2")]
    assert vip.resolve(entries, "tasks.web", "front") == [IPv4Address("10.240.8.5"), IPv4Address("10.240.8.6")]
    assert vip.resolve(entries, "db", "front") == [IPv4Address("10.240.8.9")]
    assert vip.resolve(entries, "other", "front") is None
    for name, body, words in [("web", {"Backends": []}, "needs a VIP"),
                              ("db", {"EndpointMode": "dnsrr", "VIP": "10.240.8.3"}, "has no VIP"),
                              ("web", {"VIP": "10.1.1.1"}, "not in the network"),
                              ("web", {"VIP": "10.240.8.2", "Backends": ["10.1.1.1"]}, "not in the network"),
                              ("web", {"VIP": "10.240.8.2", "EndpointMode": "ipvs"}, "vip or dnsrr"),
                              ("tasks.web", {"VIP": "10.240.8.2"}, "invalid service name")]:
        with pytest.raises(InvalidArgument, match=words):
            vip.parse_service(name, body, SUBNET)


def test_lb_table_maps_each_vip_over_its_backends() -> None:
    entries = [ServiceEntry(name="web", vip="10.240.8.2", backends=("10.240.8.5", "10.240.8.6")),
               ServiceEntry(name="idle", vip="10.240.8.3"),
               ServiceEntry(name="db", endpoint_mode=EndpointMode.DNSRR, backends=("10.240.8.9",))]
    script = vip.render_lb_table("t1", entries)
    assert script.startswith("table inet t1\ndelete table inet t1\ntable inet t1 {\n")
    assert ('ip daddr 10.240.8.2 dnat ip to numgen inc mod 2 map { 0 : 10.240.8.5, 1 : 10.240.8.6 } '
            'comment "web"') in script
    assert 'ip daddr 10.240.8.3 meta l4proto tcp reject with tcp reset comment "idle"' in script
    assert "10.240.8.9" not in script



def test_ingress_ports_render_as_round_robin_dnat_and_remote_tasks_get_the_node_address() -> None:
    entry = vip.parse_service("web", {"VIP": "10.240.8.2", "Backends": ["10.240.8.5", "10.240.8.6"],
                                      "Ports": [{"Protocol": "TCP", "TargetPort": 80, "PublishedPort": 8080}]}, SUBNET)
    assert entry.ports == (vip.IngressPort(protocol="tcp", target_port=80, published_port=8080),)
    assert ServiceEntry.from_json(entry.to_json()) == entry
    script = nft.render_table("t", [], [], [nft.IngressRule(host_port=8080, proto="tcp", target_port=80,
                                                            backends=entry.backends, service="web")],
                              [nft.OverlaySnat(iface="ov-1", node_ip="10.240.8.250", remote=("10.240.8.6",))])
    assert ('tcp dport 8080 dnat ip to numgen inc mod 2 map { 0 : 10.240.8.5 . 80, 1 : 10.240.8.6 . 80 } '
            'comment "ingress web"') in script
    assert 'oifname "ov-1" ct status dnat ip daddr { 10.240.8.6 } snat ip to 10.240.8.250' in script
    for ports, words in [([{"TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}], "publish mode host"),
                         ([{"TargetPort": 80, "PublishedPort": 0}], "1 to 65535"),
                         ([{"TargetPort": 80, "PublishedPort": 8080, "Protocol": "sctp"}], "tcp or udp"),
                         ([{"TargetPort": 80, "PublishedPort": 8080}, {"TargetPort": 81, "PublishedPort": 8080}],
                          "published twice")]:
        with pytest.raises(InvalidArgument, match=words):
            vip.parse_service("web", {"VIP": "10.240.8.2", "Ports": ports}, SUBNET)


# --- two hosts in namespaces ---------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Host:
    """A machine: a namespace with an underlay address and a NetworkService whose work runs inside it."""

    name: str
    path: Path
    address: str
    service: NetworkService
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return run_in_namespace(self.path, lambda: func(*args, **kwargs))

    def spawn(self, sandbox: Path, *cmd: str) -> None:
        self.procs.append(subprocess.Popen(["nsenter", f"--net={sandbox}", *cmd], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    def sandbox(self, network: str, address: str, name: str) -> tuple[str, Path, dict[str, Any]]:
        cid = secrets.token_hex(32)
        path = self.call(self.service.create_sandbox, cid)
        settings = self.call(self.service.connect, cid, network, name=name, ipv4_address=address)
        return cid, path, settings

    def links(self) -> dict[str, str]:
        """name -> kind of every link in this host's namespace."""
        with IPRoute(netns=str(self.path)) as ipr:
            return {link.get("IFLA_IFNAME"): link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
                    for link in ipr.get_links()}

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return in_ns(self.path, *cmd)


def _loop_inside(path: Path) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """An event loop on a thread that lives in the namespace (the service's to_thread work starts there)."""
    loop = asyncio.new_event_loop()

    def body() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            assert _libc.setns(fd, 0x40000000) == 0
        finally:
            os.close(fd)
        loop.run_forever()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return loop, thread


@dataclass
class Pair:
    a: Host
    b: Host
    token: str
    base: Path
    vni: int
    subnet: IPv4Network

    def address(self, last: int) -> str:
        return str(self.subnet.network_address + last)

    def create(self, name: str, *, vni: int | None = None, mtu: str | None = None) -> None:
        """The same overlay on both hosts, as the agent would ask each engine for it."""
        for index, host in enumerate((self.a, self.b)):
            options = {overlay.VNI_OPT: str(vni or self.vni), overlay.LOCAL_OPT: host.address,
                       overlay.NODE_IP_OPT: self.address(250 + index)}
            if mtu:
                options[overlay.MTU_OPT] = mtu
            host.call(host.service.create_network, name, driver="overlay", subnet=str(self.subnet), options=options)

    def node_peer(self, host: Host) -> dict[str, str]:
        """The node's own address in the overlay as a peer (its bridge's MAC is derived from it)."""
        ip = self.address(250 if host is self.a else 251)
        mac = overlay.bridge_mac(IPv4Address(ip))
        assert mac is not None
        return {"IP": ip, "MAC": mac, "VTEP": host.address}


def _start_host(name: str, base: Path, token: str, address: str) -> Host:
    path = base / f"host-{name}"
    create_namespace(path)
    config = DaemonConfig(data_root=base / name / "root", exec_root=base / name / "run", nft_table=f"po{token}")
    loop, thread = _loop_inside(path)
    host = Host(name=name, path=path, address=address, service=NetworkService(config), loop=loop, thread=thread)
    asyncio.run_coroutine_threadsafe(host.service.start(), loop).result(30)
    return host


def _stop_host(host: Host) -> None:
    for proc in host.procs:
        proc.kill()
        proc.wait()
    service = host.service
    with contextlib.suppress(Exception):
        for cid in list(service._containers):
            host.call(service.release, cid)
        for network in service.list_networks():
            if not network.is_predefined:
                host.call(service.remove_network, network.id)
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(service.stop(), host.loop).result(30)
    host.loop.call_soon_threadsafe(host.loop.stop)
    host.thread.join(5)
    host.loop.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    """Two hosts joined by a veth underlay (MTU 1500); everything lives in their namespaces, so removing
    them removes every link and nft table the test made there."""
    token = secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix=f"pno{token}", dir="/tmp"))
    second, third = 200 + secrets.randbelow(50), secrets.randbelow(256)
    addresses = (f"10.{second}.{third}.1", f"10.{second}.{third}.2")
    hosts: list[Host] = []
    try:
        for name in ("a", "b"):
            create_namespace(base / f"host-{name}")
        with IPRoute(netns=str(base / "host-a")) as ipr:
            ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(base / "host-b")})
        for name, address in zip(("a", "b"), addresses, strict=True):
            with IPRoute(netns=str(base / f"host-{name}")) as ipr:
                idx = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=idx, address=address, prefixlen=24)
                ipr.link("set", index=idx, state="up")
        for name, address in zip(("a", "b"), addresses, strict=True):
            hosts.append(_start_host(name, base, token, address))
        subnet = IPv4Network(f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24")
        yield Pair(a=hosts[0], b=hosts[1], token=token, base=base, vni=1000 + secrets.randbelow(100000),
                   subnet=subnet)
    finally:
        for host in hosts:
            _stop_host(host)
        leaked = [f"{host.name}: link {name}" for host in hosts for name in host.links()
                  if name.startswith(("ov-", "vx-", "veth"))]
        leaked += [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                   if str(base) in line.split()[1] and "host-" not in line.split()[1]]
        for host in hosts:
            if host.run("nft", "list", "table", "inet", f"po{token}").returncode == 0:
                leaked.append(f"{host.name}: nft table")
        for line in Path("/proc/mounts").read_text().splitlines():
            if str(base) in line.split()[1]:
                remove_namespace(Path(line.split()[1]))
        shutil.rmtree(base, ignore_errors=True)
        assert not leaked, f"test leaked: {leaked}"


def _serve(host: Host, sandbox: Path, text: str, base: Path) -> None:
    www = base / f"www-{secrets.token_hex(4)}"
    www.mkdir()
    (www / "index.html").write_text(text)
    (www / "cgi-bin").mkdir()
    who = www / "cgi-bin" / "who"
    who.write_text(f'#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n{text} $REMOTE_ADDR"\n')
    who.chmod(0o755)
    host.spawn(sandbox, "busybox", "httpd", "-f", "-p", "80", "-h", str(www))


def _wget(sandbox: Path, url: str) -> str:
    result = in_ns(sandbox, "timeout", "5", "busybox", "wget", "-qO-", url)
    return result.stdout if result.returncode == 0 else ""


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


privileged = pytest.mark.privileged


@privileged
def test_containers_on_two_hosts_reach_each_other_through_vxlan(pair: Pair) -> None:
    a, b = pair.a, pair.b
    name = f"ov{pair.token}"
    pair.create(name)
    net_a = a.service.find(name)
    assert net_a.driver == "overlay" and net_a.options[overlay.MTU_OPT] == "1450"  # underlay 1500 - 50
    vx = overlay.vxlan_name(net_a.id)
    info = a.run("ip", "-d", "link", "show", vx).stdout
    assert f"vxlan id {pair.vni} local {a.address}" in info and "dstport 4789" in info and "nolearning" in info
    assert f"master {net_a.iface}" in info and "mtu 1450" in info

    _, sa, ep_a = a.sandbox(name, pair.address(10), "ta")
    _, sb, ep_b = b.sandbox(name, pair.address(20), "tb")
    assert (ep_a["IPAddress"], ep_b["IPAddress"]) == (pair.address(10), pair.address(20))
    assert "mtu 1450" in in_ns(sa, "ip", "link", "show", "eth0").stdout
    assert not ping(sa, pair.address(20))  # no peers yet: nothing crosses

    peer_b = {"IP": ep_b["IPAddress"], "MAC": ep_b["MacAddress"], "VTEP": b.address}
    peer_a = {"IP": ep_a["IPAddress"], "MAC": ep_a["MacAddress"], "VTEP": a.address}
    a.call(a.service.add_peers, name, [peer_b, pair.node_peer(b)])
    a.call(a.service.add_peers, name, [peer_b])  # idempotent
    b.call(b.service.add_peers, name, [peer_a, pair.node_peer(a)])
    fdb = a.call(overlay.list_fdb, vx)
    assert fdb == {FdbEntry(ep_b["MacAddress"], b.address), FdbEntry(overlay.BUM_MAC, b.address),
                   FdbEntry(pair.node_peer(b)["MAC"], b.address)}
    assert a.call(overlay.list_neighbours, vx)[ep_b["IPAddress"]] == ep_b["MacAddress"]

    assert ping(sa, pair.address(20)) and ping(sb, pair.address(10))
    assert ping(sa, pair.address(1))  # the gateway: the local node's bridge (the same address on every node)
    _serve(b, sb, "from host b", pair.base)
    assert _wait_for(lambda: _wget(sa, f"http://{pair.address(20)}/") == "from host b")
    # a full-size packet crosses without fragmentation: 1450 - 28 bytes of ICMP/IP header
    assert in_ns(sa, "ping", "-c1", "-W2", "-M", "do", "-s", "1422", pair.address(20)).returncode == 0
    # the nodes themselves reach each other over the overlay from their own addresses (ingress's path)
    assert a.run("ping", "-c1", "-W2", pair.address(251)).returncode == 0

    # a peer removed: its entries go, the tunnel to it is closed
    a.call(a.service.remove_peers, name, [ep_b["IPAddress"]])
    assert ep_b["IPAddress"] not in a.call(overlay.list_neighbours, vx)
    assert FdbEntry(ep_b["MacAddress"], b.address) not in a.call(overlay.list_fdb, vx)
    assert FdbEntry(overlay.BUM_MAC, b.address) in a.call(overlay.list_fdb, vx)  # the node peer is still there
    a.call(a.service.remove_peers, name)  # all: nothing is flooded to b any more
    assert a.call(overlay.list_fdb, vx) == set() and a.call(overlay.list_neighbours, vx) == {}
    assert not ping(sa, pair.address(20))


@privileged
def test_a_different_vni_is_isolated_and_bad_requests_are_refused(pair: Pair) -> None:
    a, b = pair.a, pair.b
    one, two = f"o1{pair.token}", f"o2{pair.token}"
    pair.create(one)
    for host in (a, b):  # another VNI: frames of `one` never reach its containers, whatever their MAC
        host.call(host.service.create_network, two, driver="overlay", subnet="10.199.77.0/24",
                  options={overlay.VNI_OPT: str(pair.vni + 1), overlay.LOCAL_OPT: host.address})
    _, sa, ep_a = a.sandbox(one, pair.address(10), "ta")
    _, sb, ep_b = b.sandbox(two, "10.199.77.20", "tb")
    a.call(a.service.add_peers, one, [{"IP": pair.address(20), "MAC": ep_b["MacAddress"], "VTEP": b.address}])
    b.call(b.service.add_peers, two, [{"IP": "10.199.77.10", "MAC": ep_a["MacAddress"], "VTEP": a.address}])
    assert not ping(sa, pair.address(20))

    with pytest.raises(Conflict, match=f"VNI {pair.vni} is already in use"):
        a.call(a.service.create_network, f"o3{pair.token}", driver="overlay", subnet="10.199.78.0/24",
               options={overlay.VNI_OPT: str(pair.vni)})
    with pytest.raises(InvalidArgument, match="needs its subnet"):
        a.call(a.service.create_network, f"o4{pair.token}", driver="overlay", options={overlay.VNI_OPT: "7"})
    with pytest.raises(InvalidArgument, match="is required"):
        a.call(a.service.create_network, f"o5{pair.token}", driver="overlay", subnet="10.199.79.0/24")
    with pytest.raises(Conflict, match=f"Address already in use: {pair.address(20)}"):  # a remote task's
        a.sandbox(one, pair.address(20), "clash")
    with pytest.raises(Conflict, match=f"VIP {pair.address(20)} belongs to a task on node {b.address}"):
        a.call(a.service.set_service, one, "web", {"VIP": pair.address(20)})
    with pytest.raises(Conflict, match="belongs to container ta on this node"):
        a.call(a.service.add_peers, one, [{"IP": pair.address(10), "MAC": "02:42:00:00:00:01", "VTEP": b.address}])
    with pytest.raises(InvalidArgument, match="overlay networks"):
        a.call(a.service.add_peers, "bridge", [])
    assert sorted(k for k, kind in a.links().items() if kind == "vxlan") == sorted(
        overlay.vxlan_name(a.service.find(n).id) for n in (one, two))


@privileged
def test_vip_balances_over_tasks_on_both_hosts_and_dns_names_the_service(pair: Pair) -> None:
    a, b = pair.a, pair.b
    name = f"ov{pair.token}"
    pair.create(name)
    _, web1, ep1 = a.sandbox(name, pair.address(11), "web1")
    _, web2, ep2 = b.sandbox(name, pair.address(12), "web2")
    client_id, client, ep3 = a.sandbox(name, pair.address(30), "client")
    a.call(a.service.add_peers, name, [{"IP": ep2["IPAddress"], "MAC": ep2["MacAddress"], "VTEP": b.address}])
    b.call(b.service.add_peers, name, [{"IP": ep["IPAddress"], "MAC": ep["MacAddress"], "VTEP": a.address}
                                       for ep in (ep1, ep3)])
    _serve(a, web1, "web1", pair.base)
    _serve(b, web2, "web2", pair.base)
    the_vip = pair.address(2)
    backends = [ep1["IPAddress"], ep2["IPAddress"]]
    for host in (a, b):
        host.call(host.service.set_service, name, "web", {"VIP": the_vip, "Backends": backends})
        host.call(host.service.set_service, name, "db", {"EndpointMode": "dnsrr", "Backends": backends})

    assert nslookup(client, "web") == [the_vip]
    assert nslookup(client, f"web.{name}") == [the_vip]
    assert sorted(nslookup(client, "tasks.web")) == sorted(backends)
    assert sorted(nslookup(client, "db")) == sorted(backends)
    assert nslookup(client, "client") == [pair.address(30)]  # containers still resolve

    assert _wait_for(lambda: _wget(client, f"http://{the_vip}/") in ("web1", "web2"))
    seen = [_wget(client, f"http://{the_vip}/") for _ in range(6)]
    assert set(seen) == {"web1", "web2"}, seen  # round robin over both hosts
    assert "numgen inc mod 2" in vip.list_lb(client, a.service.table)

    # web1 turns unhealthy: one transaction replaces the map; new connections only reach web2
    a.call(a.service.set_service, name, "web", {"VIP": the_vip, "Backends": [ep2["IPAddress"]]})
    assert {_wget(client, f"http://{the_vip}/") for _ in range(4)} == {"web2"}
    # no healthy task: refused at once rather than a timeout
    a.call(a.service.set_service, name, "web", {"VIP": the_vip, "Backends": []})
    started = time.monotonic()
    assert _wget(client, f"http://{the_vip}/") == "" and time.monotonic() - started < 3
    assert a.call(a.service.list_services, name)[1]["Backends"] == []
    inspect = a.service.inspect(a.service.find(name))
    assert inspect["Scope"] == "swarm" and set(inspect["Services"]) == {"web", "db"}

    # a sandbox leaving the overlay loses its table; the service's record leaves DNS and the map
    a.call(a.service.remove_service, name, "web")
    assert nslookup(client, "web") == []
    a.call(a.service.disconnect, client_id, name)
    assert vip.list_lb(client, a.service.table) == ""


@privileged
def test_removing_the_overlay_leaves_nothing_and_restart_restores_it(pair: Pair) -> None:
    a, b = pair.a, pair.b
    name = f"ov{pair.token}"
    pair.create(name, mtu="1400")
    cid, sa, ep_a = a.sandbox(name, pair.address(10), "ta")
    a.call(a.service.add_peers, name, [pair.node_peer(b)])
    net = a.service.find(name)
    assert "mtu 1400" in a.run("ip", "link", "show", overlay.vxlan_name(net.id)).stdout
    with pytest.raises(Conflict, match="active endpoints"):
        a.call(a.service.remove_network, name)

    # someone changed the bridge's addresses meanwhile (the node's own address gone, a stray one added)
    a.run("ip", "addr", "del", f"{pair.address(250)}/24", "dev", net.iface or "")
    a.run("ip", "addr", "add", f"{pair.address(99)}/24", "dev", net.iface or "")
    # a daemon restart with the container alive: the overlay, its peers and records come back the same
    asyncio.run_coroutine_threadsafe(a.service.stop(), a.loop).result(30)
    a.service = NetworkService(a.service.config)
    asyncio.run_coroutine_threadsafe(a.service.start(), a.loop).result(30)
    assert a.call(a.service.list_peers, name) == [pair.node_peer(b)]
    addresses = a.run("ip", "-4", "-o", "addr", "show", "dev", net.iface or "").stdout
    assert [line.split()[3] for line in addresses.splitlines()] == [f"{pair.address(250)}/24", f"{pair.address(1)}/24"]
    assert ping(sa, pair.address(1))
    assert a.call(overlay.list_fdb, overlay.vxlan_name(net.id)) == {
        FdbEntry(pair.node_peer(b)["MAC"], b.address), FdbEntry(overlay.BUM_MAC, b.address)}

    a.call(a.service.release, cid)
    a.call(a.service.remove_network, name)
    b.call(b.service.remove_network, name)
    for host in (a, b):
        kinds = host.links()
        assert not [n for n, kind in kinds.items() if kind in ("vxlan", "bridge") and n.startswith(("ov-", "vx-"))]
        assert not [n for n in kinds if n.startswith("veth")]
        assert "vx-" not in host.run("bridge", "fdb", "show").stdout
        assert host.run("ip", "neigh", "show", "nud", "permanent").stdout.strip() == ""
        assert not (host.service.state_dir / "overlay" / f"{net.id}.json").exists()



@privileged
def test_ingress_port_on_either_node_reaches_tasks_on_both(pair: Pair) -> None:
    """Routing mesh groundwork: a service port published on every node, balanced over tasks anywhere."""
    a, b = pair.a, pair.b
    name = f"ov{pair.token}"
    pair.create(name)
    _, web1, ep1 = a.sandbox(name, pair.address(11), "web1")
    _, web2, ep2 = b.sandbox(name, pair.address(12), "web2")
    a.call(a.service.add_peers, name, [{"IP": ep2["IPAddress"], "MAC": ep2["MacAddress"], "VTEP": b.address},
                                       pair.node_peer(b)])
    b.call(b.service.add_peers, name, [{"IP": ep1["IPAddress"], "MAC": ep1["MacAddress"], "VTEP": a.address},
                                       pair.node_peer(a)])
    _serve(a, web1, "web1", pair.base)
    _serve(b, web2, "web2", pair.base)
    port = 20000 + secrets.randbelow(20000)
    body = {"VIP": pair.address(2), "Backends": [ep1["IPAddress"], ep2["IPAddress"]],
            "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": port}]}
    for host in (a, b):
        host.call(host.service.set_service, name, "web", body)

    def fetch(host: Host, address: str, path: str = "/") -> str:
        result = host.run("timeout", "5", "busybox", "wget", "-qO-", f"http://{address}:{port}{path}")
        return result.stdout if result.returncode == 0 else ""

    assert _wait_for(lambda: fetch(b, a.address) in ("web1", "web2"))
    assert {fetch(b, a.address) for _ in range(4)} == {"web1", "web2"}  # from the other node, through node a
    assert {fetch(a, b.address) for _ in range(4)} == {"web1", "web2"}  # and through node b
    assert {fetch(a, "127.0.0.1") for _ in range(4)} == {"web1", "web2"}  # the node's own loopback
    # who sees whom: a task on the node the client came through sees the client; a task elsewhere sees that
    # node's overlay address (its reply has to go back through it)
    seen = {fetch(b, a.address, "/cgi-bin/who").replace("[::ffff:", "").rstrip("]") for _ in range(4)}
    assert seen == {f"web1 {b.address}", f"web2 {pair.address(250)}"}
    with pytest.raises(Conflict, match=f"{port}/tcp is already published"):
        a.call(a.service.set_service, name, "api", {"VIP": pair.address(3), "Backends": [],
                                                    "Ports": [{"TargetPort": 80, "PublishedPort": port}]})
    other = f"o2{pair.token}"
    a.call(a.service.create_network, other, driver="overlay", subnet="10.199.80.0/24",
           options={overlay.VNI_OPT: str(pair.vni + 1)})
    with pytest.raises(InvalidArgument, match="needs this node's own address"):
        a.call(a.service.set_service, other, "api", {"VIP": "10.199.80.2", "Backends": [],
                                                     "Ports": [{"TargetPort": 80, "PublishedPort": port + 1}]})
    # unpublished: the port goes (nothing answers), the VIP stays
    a.call(a.service.set_service, name, "web", body | {"Ports": []})
    assert fetch(b, a.address) == "" and f"dport {port}" not in a.run("nft", "list", "ruleset").stdout


# --- through the API of real engines on lab hosts ------------------------------------------------
@pytest.fixture
def lab2() -> Iterator[Any]:
    """Two lab hosts (namespaces on a lab bridge), each running its own `pynode daemon`; removed afterwards."""
    from tests.support.lab import lab_spot

    with lab_spot() as spot:
        yield spot.up(2)


@privileged
@pytest.mark.lab
def test_lab_engines_build_the_overlay_the_agent_asks_for_and_remove_every_trace(lab2: Any) -> None:
    lab = lab2
    h1, h2 = lab.host("h1"), lab.host("h2")
    subnet = IPv4Network(f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24")
    vni = 2000 + secrets.randbelow(100000)
    node_ips = {"h1": str(subnet.network_address + 250), "h2": str(subnet.network_address + 251)}
    clients = {name: lab.client(name) for name in ("h1", "h2")}
    try:
        ids = {name: client.create_overlay_network("front", vni=vni, subnet=str(subnet),
                                                   local_ip=lab.host(name).address, node_ip=node_ips[name])
               for name, client in clients.items()}
        info = clients["h1"].get(f"/networks/{ids['h1']}")
        assert (info["Driver"], info["Scope"], info["IPAM"]["Config"][0]["Subnet"]) == ("overlay", "swarm", str(subnet))
        assert info["Options"][overlay.MTU_OPT] == "1450"
        vx = overlay.vxlan_name(ids["h1"])
        link = lab.exec("h1", "ip", "-d", "link", "show", vx).stdout
        assert f"vxlan id {vni} local {h1.address}" in link and "dstport 4789" in link and "nolearning" in link

        def node_peer(name: str) -> dict[str, str]:
            mac = overlay.bridge_mac(IPv4Address(node_ips[name]))
            assert mac is not None
            return {"IP": node_ips[name], "MAC": mac, "VTEP": lab.host(name).address}

        assert clients["h1"].add_network_peers("front", [node_peer("h2")]) == [node_peer("h2")]
        clients["h2"].add_network_peers(ids["h2"], [node_peer("h1")])
        assert clients["h1"].network_peers("front") == [node_peer("h2")]
        fdb = lab.exec("h1", "bridge", "fdb", "show", "dev", vx).stdout
        assert f"00:00:00:00:00:00 dst {h2.address} self permanent" in fdb
        assert f"{node_peer('h2')['MAC']} dst {h2.address} self permanent" in fdb
        # the nodes reach each other across the lab bridge through VXLAN, from their own overlay addresses
        assert lab.exec("h1", "ping", "-c1", "-W2", node_ips["h2"]).returncode == 0
        assert lab.exec("h2", "ping", "-c1", "-W2", node_ips["h1"]).returncode == 0

        entry = clients["h1"].set_network_service("front", "web", vip=str(subnet.network_address + 2),
                                                   backends=[str(subnet.network_address + 10)])
        assert entry["VIP"] == str(subnet.network_address + 2) and entry["EndpointMode"] == "vip"
        assert [e["Name"] for e in clients["h1"].network_services("front")] == ["web"]
        with pytest.raises(InvalidArgument, match="not in the network's subnet"):
            clients["h1"].set_network_service("front", "db", vip="192.0.2.1", backends=[])
        with pytest.raises(InvalidArgument, match="unicast"):
            clients["h1"].add_network_peers("front", [{"IP": node_ips["h2"], "MAC": "ff:ff:ff:ff:ff:ff",
                                                       "VTEP": h2.address}])
        clients["h1"].remove_network_service("front", "web")
        assert clients["h1"].remove_network_peers("front", [node_ips["h2"]]) == []
        assert " dst " not in lab.exec("h1", "bridge", "fdb", "show", "dev", vx).stdout  # only the bridge's own
        assert lab.exec("h1", "ping", "-c1", "-W1", node_ips["h2"]).returncode != 0

        for client in clients.values():
            client.delete("/networks/front")
        for name in ("h1", "h2"):
            links = lab.exec(name, "ip", "-o", "link").stdout
            assert " ov-" not in links and " vx-" not in links, links
            assert "vx-" not in lab.exec(name, "bridge", "fdb", "show").stdout
            assert str(subnet.network_address) not in lab.exec(name, "nft", "list", "ruleset").stdout
    finally:
        for client in clients.values():
            client.close()


@privileged
@pytest.mark.lab
def test_task_containers_on_two_lab_hosts_ping_and_balance_over_the_overlay(lab2: Any) -> None:
    """End to end, as the agent will do it: each engine makes the overlay, runs a busybox task on it with
    its allocated address; peers and a service record are programmed; tasks ping across hosts, the
    service's VIP reaches both, so does its port published on either host (routing mesh); removing them
    leaves no VXLAN device, bridge, FDB entry or nft rule."""
    lab = lab2
    subnet = IPv4Network(f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24")
    vni = 2000 + secrets.randbelow(100000)
    hosts = ("h1", "h2")
    task_ip = {"h1": str(subnet.network_address + 10), "h2": str(subnet.network_address + 20)}
    node_ip = {"h1": str(subnet.network_address + 250), "h2": str(subnet.network_address + 251)}
    clients = {name: lab.client(name) for name in hosts}

    def pynode(host: str, *args: str, timeout: float = 120) -> str:
        result = lab.exec(host, "pynode", *args, timeout=timeout)
        assert result.returncode == 0, f"{host}: pynode {' '.join(args)}: {result.stderr}"
        return result.stdout

    try:
        for name in hosts:
            pynode(name, "image", "bootstrap", "busybox", "-q")
            clients[name].create_overlay_network("front", vni=vni, subnet=str(subnet),
                                                 local_ip=lab.host(name).address, node_ip=node_ip[name])
            script = f"mkdir -p /www && echo {name} > /www/index.html && httpd -f -p 80 -h /www"
            run = lab.exec(name, "pynode", "run", "-d", "--name", f"task-{name}", "--network", "front", "--ip",
                           task_ip[name], "busybox", "sh", "-c", script)
            if run.returncode != 0 and "network front not found" in run.stderr:
                pytest.skip("this engine's containers are not wired to networks yet")
            assert run.returncode == 0, run.stderr
        macs = {}
        for name in hosts:
            info = clients[name].get(f"/containers/task-{name}/json")
            endpoint = info["NetworkSettings"]["Networks"]["front"]
            assert endpoint["IPAddress"] == task_ip[name]
            macs[name] = endpoint["MacAddress"]
        for name, other in (("h1", "h2"), ("h2", "h1")):
            clients[name].add_network_peers("front", [
                {"IP": task_ip[other], "MAC": macs[other], "VTEP": lab.host(other).address},
                {"IP": node_ip[other], "MAC": overlay.bridge_mac(IPv4Address(node_ip[other])) or "",
                 "VTEP": lab.host(other).address}])
        assert "mtu 1450" in pynode("h1", "exec", "task-h1", "ip", "link", "show", "eth0")
        pynode("h1", "exec", "task-h1", "ping", "-c1", "-W2", task_ip["h2"])
        pynode("h2", "exec", "task-h2", "ping", "-c1", "-W2", task_ip["h1"])

        the_vip = str(subnet.network_address + 2)
        port = 20000 + secrets.randbelow(20000)
        for name in hosts:
            clients[name].set_network_service("front", "web", vip=the_vip, backends=list(task_ip.values()),
                                              ports=[{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": port}])
        assert the_vip in pynode("h1", "exec", "task-h1", "nslookup", "web", "127.0.0.11")
        answers = {pynode("h1", "exec", "task-h1", "timeout", "5", "wget", "-qO-", "http://web/").strip()
                   for _ in range(4)}
        assert answers == {"h1", "h2"}
        # routing mesh: the published port answers on each lab host's address, from tasks on both hosts
        for entry, client_host in (("h1", "h2"), ("h2", "h1")):
            url = f"http://{lab.host(entry).address}:{port}/"
            seen = {lab.exec(client_host, "timeout", "5", "busybox", "wget", "-qO-", url).stdout.strip()
                    for _ in range(4)}
            assert seen == {"h1", "h2"}, (entry, seen)
    finally:
        for name in hosts:
            lab.exec(name, "pynode", "rm", "-f", f"task-{name}")
            with contextlib.suppress(Exception):
                clients[name].delete("/networks/front")
            clients[name].close()
    for name in hosts:
        links = lab.exec(name, "ip", "-o", "link").stdout
        assert " ov-" not in links and " vx-" not in links and " veth" not in links, links
        assert str(subnet.network_address) not in lab.exec(name, "nft", "list", "ruleset").stdout
