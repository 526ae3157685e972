"""Bridge, macvlan, ports, DNS and filtering against the real kernel, with sandboxes standing in for
containers (busybox processes inside them) and client namespaces standing in for other machines."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.errors import Conflict, InvalidArgument, NotFound
from tests.node.network.conftest import Harness, host_links, in_ns, nslookup, ping

pytestmark = pytest.mark.privileged


def _serve(h: Harness, path: Path, text: str, port: int = 80) -> None:
    www = h.base / f"www{port}-{time.monotonic_ns()}"
    www.mkdir()
    (www / "index.html").write_text(text)
    h.spawn(path, "busybox", "httpd", "-f", "-p", str(port), "-h", str(www))
    time.sleep(0.2)


def _wget(path: Path | None, url: str) -> str:
    cmd = ["timeout", "5", "busybox", "wget", "-qO-", url]
    result = in_ns(path, *cmd) if path else subprocess.run(cmd, capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else ""


def test_containers_on_a_user_network_reach_each_other_by_name_alias_and_id(harness: Harness) -> None:
    h = harness
    net = h.service.create_network(f"n{h.token}")
    web_id, web, web_ep = h.sandbox(net.name, name="web", aliases=["www"])
    _, cli, cli_ep = h.sandbox(net.name, name="cli")
    assert web_ep["IPAddress"] != cli_ep["IPAddress"]
    assert web_ep["Gateway"] == str(net.ipam.gateway) and web_ep["DNSNames"] == ["web", "www", web_id[:12]]
    assert h.service.resolv_conf(web_id).splitlines()[-2:] == ["nameserver 127.0.0.11", "options ndots:0"]
    _serve(h, web, "hello from web")
    for name in ("web", "www", web_id[:12], f"web.{net.name}"):
        assert nslookup(cli, name) == [web_ep["IPAddress"]], name
    assert nslookup(cli, "nosuchname") == []
    assert ping(cli, web_ep["IPAddress"])
    assert _wget(cli, f"http://{web_ep['IPAddress']}/") == "hello from web"


def test_default_bridge_has_no_names_and_user_networks_are_isolated(harness: Harness) -> None:
    h = harness
    net_a = h.service.create_network(f"a{h.token}")
    net_b = h.service.create_network(f"b{h.token}")
    _, a, a_ep = h.sandbox(net_a.name, name="alpha")
    b_id, b, b_ep = h.sandbox(net_b.name, name="beta")
    d_id, d, d_ep = h.sandbox("bridge", name="dflt")
    assert "127.0.0.11" not in h.service.resolv_conf(d_id)
    assert nslookup(d, "alpha") == []
    assert nslookup(b, "alpha") == []
    assert not ping(b, a_ep["IPAddress"])
    assert not ping(d, a_ep["IPAddress"])
    assert ping(a, str(net_a.ipam.gateway))
    # a second network makes them neighbours; disconnecting undoes it
    h.service.connect(b_id, net_a.name, name="beta")
    assert ping(b, a_ep["IPAddress"])
    h.service.disconnect(b_id, net_a.name)
    assert not ping(b, a_ep["IPAddress"])
    assert ping(b, str(net_b.ipam.gateway))


def test_published_ports_from_loopback_other_hosts_and_other_containers(harness: Harness) -> None:
    h = harness
    net = h.service.create_network(f"p{h.token}")
    web_id, web, _ = h.sandbox(net.name, name="web")
    _serve(h, web, "published")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    lo_port = probe.getsockname()[1]
    probe.close()
    bound = h.service.publish(web_id, [
        {"HostIp": "127.0.0.1", "HostPort": str(lo_port), "ContainerPort": 80, "Protocol": "tcp"},
        {"HostIp": "", "HostPort": "", "ContainerPort": 80, "Protocol": "tcp"}])
    any_port = int(bound[1]["HostPort"])
    assert bound[0]["HostPort"] == str(lo_port) and any_port > 0
    assert h.service.published(web_id) == bound
    assert _wget(None, f"http://127.0.0.1:{lo_port}/") == "published"
    assert _wget(None, f"http://127.0.0.1:{any_port}/") == "published"
    client = h.client()
    assert _wget(client.path, f"http://{client.host_ip}:{any_port}/") == "published"
    assert _wget(client.path, f"http://{client.host_ip}:{lo_port}/") == ""  # bound to 127.0.0.1 only
    other = h.service.create_network(f"q{h.token}")
    _, peer, _ = h.sandbox(other.name, name="peer")
    assert _wget(peer, f"http://{client.host_ip}:{any_port}/") == "published"
    _, neighbour, _ = h.sandbox(net.name, name="neighbour")  # same bridge: hairpin NAT brings replies back
    assert _wget(neighbour, f"http://{client.host_ip}:{any_port}/") == "published"
    # the same port again, from one of ours or from any process, is refused and nothing stays held
    with pytest.raises(Conflict, match=f"Bind for 0.0.0.0:{any_port} failed: port is already allocated"):
        h.service.publish(web_id, [{"HostPort": str(any_port), "ContainerPort": 81}])
    squatter = socket.socket()
    squatter.bind(("0.0.0.0", 0))
    taken = squatter.getsockname()[1]
    try:
        with pytest.raises(Conflict, match=f"0.0.0.0:{taken} failed"):
            h.service.publish(web_id, [{"HostPort": "", "ContainerPort": 82},
                                       {"HostPort": str(taken), "ContainerPort": 83}])
    finally:
        squatter.close()
    assert len(h.service.published(web_id)) == 2
    h.service.unpublish(web_id)
    assert _wget(None, f"http://127.0.0.1:{lo_port}/") == ""
    assert f"dport {any_port}" not in subprocess.run(["nft", "list", "table", "inet", h.service.table],
                                                     capture_output=True, text=True).stdout


def test_outbound_is_masqueraded_and_internal_networks_have_none(harness: Harness) -> None:
    h = harness
    client = h.client()  # has no route back to any container subnet: only masquerade lets replies in
    _, dflt, _ = h.sandbox("bridge", name="out")
    assert ping(dflt, client.client_ip)
    internal = h.service.create_network(f"i{h.token}", internal=True)
    _, inner, inner_ep = h.sandbox(internal.name, name="inner")
    _, other, _ = h.sandbox(internal.name, name="other")
    assert inner_ep["Gateway"] == ""
    assert not ping(inner, client.client_ip)
    assert ping(other, inner_ep["IPAddress"])


def test_macvlan_on_a_veth_parent(harness: Harness) -> None:
    h = harness
    client = h.client("m")  # its host side is the macvlan parent; the client is a machine on that LAN
    with pytest.raises(InvalidArgument, match="does not exist"):
        h.service.create_network(f"m{h.token}x", driver="macvlan", options={"parent": f"nope{h.token}"})
    lan = client.client_ip.rsplit(".", 1)[0] + ".0/24"
    net = h.service.create_network(f"m{h.token}", driver="macvlan", subnet=lan,
                                   options={"parent": client.host_ifname})
    base = int(client.client_ip.rsplit(".", 1)[1])
    ip = client.client_ip.rsplit(".", 1)[0] + f".{(base + 100) % 250 + 3}"
    _, box, ep = h.sandbox(net.name, name="mv", ipv4_address=ip)
    assert ep["IPAddress"] == ip
    # the client sits on a /30: give it the LAN route too, as a real LAN peer would have
    in_ns(client.path, "ip", "route", "add", lan, "dev", "eth0")
    assert ping(box, client.client_ip)
    _, peer, peer_ep = h.sandbox(net.name, name="mv2")
    assert nslookup(peer, "mv") == [ip]
    assert ping(peer, ip)
    with pytest.raises(InvalidArgument, match="ipvlan is not available"):
        h.service.create_network(f"v{h.token}", driver="ipvlan")


def test_bad_input_leaves_nothing_behind(harness: Harness) -> None:
    h = harness
    net = h.service.create_network(f"b{h.token}", ip_range=None)
    subnet = str(net.ipam.subnet)
    before = host_links()
    with pytest.raises(Conflict, match="overlaps"):
        h.service.create_network(f"c{h.token}", subnet=subnet)
    with pytest.raises(InvalidArgument, match="not a usable address"):
        h.service.create_network(f"c{h.token}", subnet="10.251.7.0/24", gateway="10.1.1.1")
    with pytest.raises(Conflict, match="already exists"):
        h.service.create_network(net.name)
    with pytest.raises(NotFound, match="not found"):
        h.service.connect("x" * 64, "nosuchnet", name="x")
    cid, box, ep = h.sandbox(net.name, name="first")
    with pytest.raises(Conflict, match="already in use"):
        h.service.connect("y" * 64, net.name, name="second", ipv4_address=ep["IPAddress"])
    with pytest.raises(InvalidArgument, match="no configured subnet"):
        h.service.connect("y" * 64, net.name, name="second", ipv4_address="10.251.9.9")
    with pytest.raises(Conflict, match="active endpoints"):
        h.service.remove_network(net.name)
    with pytest.raises(InvalidArgument, match="pre-defined"):
        h.service.remove_network("bridge")
    ports = subprocess.run(["ip", "-o", "link", "show", "master", net.iface], capture_output=True, text=True)
    assert [line.split(":")[1].strip().split("@")[0] for line in ports.stdout.splitlines()] == [
        h.service._containers[cid].endpoints[0].host_ifname]
    assert "y" * 64 not in h.service._containers  # the sandbox made for the failed connect is gone too
    h.service.release("y" * 64)
    h.service.release(cid)
    h.service.remove_network(net.name)
    assert net.iface in before and net.iface not in host_links()


def test_restart_reconciles_rules_and_listeners_and_restore_frees_the_gone(harness: Harness) -> None:
    h = harness
    net = h.service.create_network(f"r{h.token}")
    keep_id, keep, keep_ep = h.sandbox(net.name, name="keep")
    gone_id, gone, _ = h.sandbox(net.name, name="gone")
    h.service.publish(keep_id, [{"HostIp": "127.0.0.1", "HostPort": "", "ContainerPort": 80}])
    rules = subprocess.run(["nft", "list", "table", "inet", h.service.table], capture_output=True, text=True).stdout
    h.restart()
    assert subprocess.run(["nft", "list", "table", "inet", h.service.table], capture_output=True,
                          text=True).stdout == rules
    assert nslookup(gone, "keep") == [keep_ep["IPAddress"]]
    h.service.restore([(keep_id, 4242), (gone_id, None)])
    assert not gone.exists()
    after = subprocess.run(["nft", "list", "table", "inet", h.service.table], capture_output=True, text=True).stdout
    assert after == rules and after.count("dnat ip to") == 1
    assert nslookup(keep, "gone") == []
    assert nslookup(keep, "keep") == [keep_ep["IPAddress"]]


UDP_ECHO = """
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 5353))
while True:
    data, peer = sock.recvfrom(512)
    sock.sendto(b"echo:" + data, peer)
"""


def test_udp_port_published_on_loopback(harness: Harness) -> None:
    h = harness
    net = h.service.create_network(f"u{h.token}")
    cid, box, _ = h.sandbox(net.name, name="udp")
    h.procs.append(subprocess.Popen(["nsenter", f"--net={box}", sys.executable, "-c", UDP_ECHO]))
    bound = h.service.publish(cid, [{"HostIp": "127.0.0.1", "HostPort": "", "ContainerPort": 5353,
                                     "Protocol": "udp"}])
    port = int(bound[0]["HostPort"])
    reply = b""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for _ in range(20):
            sock.sendto(b"ping-udp", ("127.0.0.1", port))
            try:
                reply = sock.recv(512)
                break
            except TimeoutError:
                continue
    assert reply == b"echo:ping-udp"


def test_sandbox_removal_is_idempotent_and_frees_the_address(harness: Harness) -> None:
    h = harness
    net = h.service.create_network(f"s{h.token}")
    cid, box, ep = h.sandbox(net.name, name="tmp")
    veth = h.service._containers[cid].endpoints[0].host_ifname
    assert box == h.service.sandbox_path(cid) and box.parent == h.base / "run" / "netns"
    assert veth in host_links()
    h.service.remove_sandbox(cid)
    h.service.remove_sandbox(cid)
    assert not box.exists() and veth not in host_links()
    assert str(box) not in Path("/proc/mounts").read_text()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(
        cid) == 0
    _, _, again = h.sandbox(net.name, name="next", ipv4_address=ep["IPAddress"])
    assert again["IPAddress"] == ep["IPAddress"]
    h.service.release(cid)
    h.service.release(cid)


def test_calls_from_a_running_event_loop_work(harness: Harness) -> None:
    """The container service calls from the daemon's loop thread; pyroute2 must not see that loop."""
    h = harness
    cid = "e" * 64

    async def from_the_loop() -> dict[str, object]:
        h.service.create_sandbox(cid)
        settings = h.service.connect(cid, "bridge", name="looped")
        h.service.publish(cid, [{"HostIp": "127.0.0.1", "HostPort": "", "ContainerPort": 80}])
        return settings

    settings = h.run(from_the_loop())
    assert settings["IPAddress"]
    h.run(_release_async(h, cid))
    assert h.service.sandbox_path(cid) is None


async def _release_async(h: Harness, cid: str) -> None:
    h.service.release(cid)
