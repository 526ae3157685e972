"""Issue 4 through `pynode run` where no other test goes: several `--network` flags at run, a published port
range, the per-container /etc/hostname and /etc/hosts, `network connect --ip --alias`, and a macvlan network
made with the CLI on a parent link (the host side of a veth into a client namespace)."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from tests.node.network.conftest import Client, in_ns
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged

SERVE_80_81 = ("mkdir -p /w && echo from-$HOSTNAME > /w/index.html && httpd -p 80 -h /w && httpd -p 81 -h /w && "
               "exec sleep 300")


@pytest.fixture
def node(engine: EngineProcess) -> EngineProcess:
    engine.cli("image", "bootstrap", "busybox")
    return engine


def _free_range(n: int) -> int:
    """The first of n consecutive free host ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("0.0.0.0", 0))
            first = int(probe.getsockname()[1])
        if first + n > 65535:
            continue
        socks = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


def _curl(port: int) -> str:
    return subprocess.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{port}/"], capture_output=True,
                          text=True).stdout.strip()


def test_several_networks_at_run(node: EngineProcess) -> None:
    node.cli("network", "create", "front")
    node.cli("network", "create", "back")
    node.cli("run", "-d", "--name", "both", "--network", "front", "--network", "back", "--network-alias", "svc",
             "busybox", "sleep", "300")
    networks = json.loads(node.cli("inspect", "-f", "{{json .NetworkSettings.Networks}}", "both").stdout)
    assert sorted(networks) == ["back", "front"]
    assert networks["front"]["Aliases"] == ["svc"]  # the flags that name one network name the first
    links = node.cli("exec", "both", "ip", "-o", "-4", "addr").stdout
    assert f"eth0    inet {networks['front']['IPAddress']}/" in links
    assert f"eth1    inet {networks['back']['IPAddress']}/" in links
    for network, name in (("front", "svc"), ("back", "both"), ("front", "both")):
        ping = node.cli("run", "--rm", "--network", network, "busybox", "ping", "-c1", "-W2", name, check=False)
        assert ping.returncode == 0, (network, name, ping.stdout)
    clash = node.cli("run", "--rm", "--network", "host", "--network", "front", "busybox", "true", check=False)
    assert clash.returncode == 125 and "conflicting options" in clash.stderr
    node.cli("rm", "-f", "both")


def test_a_published_port_range(node: EngineProcess) -> None:
    first = _free_range(2)
    spec = f"{first}-{first + 1}:80-81"
    node.cli("run", "-d", "--name", "ranged", "--hostname", "rng", "-p", spec, "busybox", "sh", "-c", SERVE_80_81)
    deadline = time.monotonic() + 15
    while _curl(first + 1) != "from-rng" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _curl(first) == _curl(first + 1) == "from-rng"
    assert sorted(node.cli("port", "ranged").stdout.splitlines()) == [
        f"80/tcp -> 0.0.0.0:{first}", f"81/tcp -> 0.0.0.0:{first + 1}"]
    assert node.cli("ps", "--format", "{{.Ports}}").stdout.strip() == (  # Docker groups equal numbers only
        f"0.0.0.0:{first}->80/tcp, 0.0.0.0:{first + 1}->81/tcp")
    uneven = node.cli("run", "--rm", "-p", f"{first}-{first + 2}:80-81", "busybox", "true", check=False)
    assert uneven.returncode == 125 and uneven.stderr.count("\n") == 1
    node.cli("rm", "-f", "ranged")


def test_hostname_and_hosts_files_and_connect_with_ip_and_alias(node: EngineProcess) -> None:
    node.cli("network", "create", "--subnet", "10.253.71.0/24", "lan")
    cid = node.cli("run", "-d", "--name", "web", "--network", "lan", "busybox", "sh", "-c",
                   "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w").stdout.strip()
    ip = node.cli("inspect", "-f", "{{.NetworkSettings.Networks.lan.IPAddress}}", "web").stdout.strip()
    assert node.cli("exec", "web", "cat", "/etc/hostname").stdout == f"{cid[:12]}\n"
    hosts = node.cli("exec", "web", "cat", "/etc/hosts").stdout
    assert "127.0.0.1\tlocalhost" in hosts and f"{ip}\t{cid[:12]}" in hosts
    node.cli("network", "create", "side")
    node.cli("run", "-d", "--name", "other", "--network", "side", "busybox", "sleep", "300")
    node.cli("network", "connect", "--ip", "10.253.71.99", "--alias", "late", "lan", "other")
    assert node.cli("inspect", "-f", "{{.NetworkSettings.Networks.lan.IPAddress}} "
                    "{{json .NetworkSettings.Networks.lan.Aliases}}", "other").stdout.split() == [
        "10.253.71.99", '["late"]']
    fetched = node.cli("run", "--rm", "--network", "lan", "busybox", "sh", "-c",
                       "ping -c1 -W2 late >/dev/null && timeout 5 wget -qO- http://web")
    assert fetched.stdout == "hi\n"
    taken = node.cli("network", "connect", "--ip", "10.253.71.99", "lan", "web", check=False)
    assert taken.returncode == 1 and taken.stderr.count("\n") == 1
    node.cli("rm", "-f", "web", "other")
    node.cli("network", "rm", "lan", "side")


def test_macvlan_network_through_the_cli(node: EngineProcess, client_ns: Client) -> None:
    lan_prefix = client_ns.client_ip.rsplit(".", 1)[0]
    lan = f"{lan_prefix}.0/24"
    node.cli("network", "create", "-d", "macvlan", "-o", f"parent={client_ns.host_ifname}", "--subnet", lan, "mv")
    info = json.loads(node.cli("network", "inspect", "mv").stdout)[0]
    assert info["Driver"] == "macvlan" and info["Options"]["parent"] == client_ns.host_ifname
    last = int(client_ns.client_ip.rsplit(".", 1)[1])
    ip = f"{lan_prefix}.{(last + 100) % 250 + 3}"
    in_ns(client_ns.path, "ip", "route", "add", lan, "dev", "eth0")  # a LAN peer knows the whole LAN
    out = node.cli("run", "--rm", "--network", "mv", "--ip", ip, "busybox", "sh", "-c",
                   f"ip -o -4 addr show eth0; ping -c1 -W2 {client_ns.client_ip} >/dev/null && echo reached")
    assert f"inet {ip}/24" in out.stdout and out.stdout.strip().endswith("reached")
    node.cli("network", "rm", "mv")
    missing = node.cli("network", "create", "-d", "macvlan", "-o", "parent=nosuch0", "--subnet", "10.253.72.0/24",
                       "bad", check=False)
    assert missing.returncode == 1 and "parent interface nosuch0 does not exist" in missing.stderr
