"""Containers on networks through the CLI, against the kernel: a host port in use, `rm -f`, a daemon crash
and restart policies leave exactly the links, addresses, sandboxes and nft rules they should; `pynode port`,
`ps` PORTS, `network connect/disconnect` on a running container, `--network none`.

The host is reached only through loopback. Every test has its own daemon (own nft table, own default bridge).
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from tests.node.network.conftest import host_links
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged

HTTPD = "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def node(engine: EngineProcess) -> EngineProcess:
    engine.cli("image", "bootstrap", "busybox")
    return engine


@pytest.fixture
def held_port() -> Iterator[tuple[int, socket.socket]]:
    """A host port some other program listens on (0.0.0.0:PORT)."""
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1], sock
    finally:
        sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _table(node: EngineProcess) -> str:
    return node.extra_args[node.extra_args.index("--nft-table") + 1]


def _bridge_of(node: EngineProcess, network: str) -> str:
    return node.cli("network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}',
                    network).stdout.strip()


def _bridge_ports(bridge: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _addresses(ifname: str) -> set[str]:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return set()
        return {f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=found[0])}


def _rules(node: EngineProcess) -> str:
    return subprocess.run(["nft", "list", "table", "inet", _table(node)], capture_output=True, text=True).stdout


def _snapshot(node: EngineProcess, *networks: str) -> dict[str, Any]:
    """What networking has made on the host for this daemon: ports and addresses of its bridges, its nft
    table, its sandboxes, the endpoints its networks list."""
    bridges = [_bridge_of(node, n) for n in ("bridge", *networks)]
    netns = node.exec_root / "netns"
    return {
        "ports": {b: _bridge_ports(b) for b in bridges}, "addresses": {b: _addresses(b) for b in bridges},
        "rules": _rules(node), "sandboxes": sorted(p.name for p in netns.iterdir()) if netns.exists() else [],
        "endpoints": {n: node.cli("network", "inspect", "-f", "{{json .Containers}}", n).stdout
                      for n in ("bridge", *networks)},
    }


def _mounts_of(cid: str) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if cid in line]


def _curl(port: int) -> str:
    return subprocess.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{port}/"], capture_output=True,
                          text=True).stdout.strip()


def _wait_for(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_port_in_use_fails_run_and_leaves_nothing(node: EngineProcess, held_port: tuple[int, socket.socket]) -> None:
    port, sock = held_port
    before = _snapshot(node)
    clash = node.cli("run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD, check=False)
    assert clash.returncode == 125
    assert clash.stderr.strip().splitlines() == [
        f"Error response from daemon: Bind for 0.0.0.0:{port} failed: port is already allocated"]
    assert _snapshot(node) == before  # no veth, no address in use, no rule, no sandbox
    cid = node.cli("inspect", "-f", "{{.Id}}", "clash").stdout.strip()
    assert node.cli("inspect", "-f", "{{.State.Status}}", "clash").stdout.strip() == "created"  # as Docker
    assert not _mounts_of(cid)
    gone = node.cli("run", "--rm", "--name", "gone", "-p", f"{port}:80", "busybox", "true", check=False)
    assert gone.returncode == 125 and node.cli("inspect", "gone", check=False).returncode == 1
    assert _snapshot(node) == before
    sock.close()  # the port is free again: the container starts, nothing half-made is in its way
    node.cli("start", "clash")
    assert _wait_for(lambda: _curl(port) == "hello-from-web")
    node.cli("rm", "-f", "clash")
    assert _snapshot(node) == before


def test_rm_f_leaves_no_links_addresses_or_rules(node: EngineProcess) -> None:
    subnet = f"10.251.{random.randrange(256)}"
    node.cli("network", "create", "--subnet", f"{subnet}.0/24", "front")
    before = _snapshot(node, "front")
    front, default = _bridge_of(node, "front"), _bridge_of(node, "bridge")
    port = _free_port()
    node.cli("run", "-d", "--name", "web", "--network", "front", "--ip", f"{subnet}.50", "-p", f"{port}:80",
             "busybox", "sh", "-c", HTTPD)
    node.cli("network", "connect", "bridge", "web")
    veths = _bridge_ports(front) | _bridge_ports(default)
    assert len(veths) == 2 and veths <= host_links()
    assert _rules(node).count(f"dnat ip to {subnet}.50:80") == 1
    assert _wait_for(lambda: _curl(port) == "hello-from-web")
    assert len(list((node.exec_root / "netns").iterdir())) == 1
    node.cli("rm", "-f", "web")
    assert veths & host_links() == set()
    assert _snapshot(node, "front") == before
    # the address went back to the pool
    again = node.cli("run", "--rm", "--network", "front", "--ip", f"{subnet}.50", "busybox", "ip", "-o", "-4", "addr")
    assert f"{subnet}.50/24" in again.stdout
    node.cli("network", "rm", "front")


def test_daemon_sigkill_and_restart_keep_a_published_port_and_dns(node: EngineProcess) -> None:
    node.cli("network", "create", "front")
    port = _free_port()
    node.cli("run", "-d", "--name", "web", "--network", "front", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
             HTTPD)
    assert _wait_for(lambda: _curl(port) == "hello-from-web")
    rules = _rules(node)
    assert rules.count("dnat ip to") == 1
    node.kill()
    assert _curl(port) == "hello-from-web"  # the kernel keeps forwarding while no daemon runs
    node.start()
    assert _curl(port) == "hello-from-web"
    assert _rules(node) == rules  # reconciled: the same rules, once
    with socket.socket() as sock, pytest.raises(OSError):
        sock.bind(("127.0.0.1", port))  # held again by the restarted daemon
    ping = node.cli("run", "--rm", "--network", "front", "busybox", "ping", "-c1", "-W2", "web", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr  # the embedded DNS serves the adopted container
    assert f"127.0.0.1:{port}->80/tcp" in node.cli("ps", "--format", "{{.Ports}}").stdout
    node.stop()  # a clean stop keeps the running container's networking too
    assert _curl(port) == "hello-from-web"
    node.start()
    assert _rules(node) == rules
    node.cli("rm", "-f", "web")
    node.cli("network", "rm", "front")
    assert "dnat ip to" not in _rules(node)


def test_port_command_and_ps_ports(node: EngineProcess) -> None:
    loop_port, same = _free_port(), _free_port()
    node.cli("run", "-d", "--name", "pp", "-p", f"127.0.0.1:{loop_port}:80", "-p", f"{same}:{same}",
             "--expose", "9000/udp", "-P", "busybox", "sleep", "60")
    ports = json.loads(node.cli("inspect", "-f", "{{json .NetworkSettings.Ports}}", "pp").stdout)
    random_port = ports["9000/udp"][0]["HostPort"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(loop_port)}],
                     f"{same}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(same)}],
                     "9000/udp": [{"HostIp": "0.0.0.0", "HostPort": random_port}]}
    lines = node.cli("port", "pp").stdout.splitlines()
    assert sorted(lines) == sorted([f"80/tcp -> 127.0.0.1:{loop_port}", f"{same}/tcp -> 0.0.0.0:{same}",
                                    f"9000/udp -> 0.0.0.0:{random_port}"])
    assert node.cli("port", "pp", "80").stdout == f"127.0.0.1:{loop_port}\n"
    assert node.cli("port", "pp", "9000/udp").stdout == f"0.0.0.0:{random_port}\n"
    missing = node.cli("port", "pp", "81", check=False)
    assert missing.returncode == 1 and missing.stderr == "Error: No public port '81/tcp' published for pp\n"
    shown = node.cli("ps", "--format", "{{.Names}}|{{.Ports}}").stdout.strip()
    assert shown == (f"pp|0.0.0.0:{same}->{same}/tcp, 127.0.0.1:{loop_port}->80/tcp, "
                     f"0.0.0.0:{random_port}->9000/udp")
    header = node.cli("ps").stdout.splitlines()
    assert "PORTS" in header[0] and f"127.0.0.1:{loop_port}->80/tcp" in header[1]
    node.cli("stop", "-t", "0", "pp")
    assert node.cli("port", "pp").stdout == ""
    assert node.cli("ps", "-a", "--format", "{{.Names}}|{{.Ports}}").stdout.strip() == "pp|"
    node.cli("rm", "pp")


def test_a_published_port_is_reachable_from_other_containers(node: EngineProcess) -> None:
    port = _free_port()
    node.cli("network", "create", "other")
    node.cli("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD)
    assert _wait_for(lambda: _curl(port) == "hello-from-web")
    for network in ("bridge", "other"):  # through the host's address on the client's own bridge
        config = json.loads(node.cli("network", "inspect", "-f", "{{json .IPAM.Config}}", network).stdout)
        gateway = config[0]["Gateway"]
        fetched = node.cli("run", "--rm", "--network", network, "busybox", "timeout", "5", "wget", "-qO-",
                           f"http://{gateway}:{port}/", check=False)
        assert fetched.stdout.strip() == "hello-from-web", (network, fetched.stderr)
    node.cli("rm", "-f", "web")
    node.cli("network", "rm", "other")


def test_restart_policy_replumbs_once(node: EngineProcess) -> None:
    port = _free_port()
    node.cli("run", "-d", "--name", "flap", "--restart", "on-failure:5", "-p", f"127.0.0.1:{port}:80", "busybox",
             "sh", "-c", "mkdir -p /www && echo up > /www/index.html && httpd -p 80 -h /www && sleep 2 && exit 1")
    bridge = _bridge_of(node, "bridge")

    def restarted_and_serving() -> bool:
        count = node.cli("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flap").stdout.split()
        return int(count[0]) >= 1 and count[1] == "running" and _curl(port) == "up"

    assert _wait_for(restarted_and_serving, timeout=30)
    assert len(_bridge_ports(bridge)) == 1
    assert _rules(node).count("dnat ip to") == 1
    assert len(list((node.exec_root / "netns").iterdir())) == 1
    node.cli("rm", "-f", "flap")
    assert _bridge_ports(bridge) == set() and "dnat ip to" not in _rules(node)


def test_connect_and_disconnect_a_running_container(node: EngineProcess) -> None:
    node.cli("network", "create", "side")
    node.cli("run", "-d", "--name", "web", "busybox", "sh", "-c", HTTPD)
    node.cli("network", "connect", "--alias", "www", "side", "web")
    networks = json.loads(node.cli("inspect", "-f", "{{json .NetworkSettings.Networks}}", "web").stdout)
    assert sorted(networks) == ["bridge", "side"] and networks["side"]["Aliases"] == ["www"]
    assert networks["side"]["IPAddress"] and networks["side"]["EndpointID"]
    fetched = node.cli("run", "--rm", "--network", "side", "busybox", "timeout", "5", "wget", "-qO-", "http://www",
                       check=False)
    assert fetched.stdout.strip() == "hello-from-web"
    assert "nameserver 127.0.0.11" in node.cli("exec", "web", "cat", "/etc/resolv.conf").stdout
    node.cli("network", "disconnect", "side", "web")
    assert "eth1" not in node.cli("exec", "web", "ip", "-o", "link").stdout
    assert "127.0.0.11" not in node.cli("exec", "web", "cat", "/etc/resolv.conf").stdout  # default bridge: host's
    again = node.cli("network", "disconnect", "side", "web", check=False)
    assert again.returncode == 1 and "is not connected to network side" in again.stderr
    node.cli("stop", "-t", "0", "web")
    node.cli("network", "connect", "side", "web")  # a stopped container joins at its next start
    node.cli("start", "web")
    assert node.cli("inspect", "-f", "{{.NetworkSettings.Networks.side.IPAddress}}", "web").stdout.strip()
    assert node.cli("network", "rm", "side", check=False).returncode == 1  # still in use
    node.cli("rm", "-f", "web")
    node.cli("network", "rm", "side")


def test_none_host_and_extra_hosts(node: EngineProcess) -> None:
    none = node.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "-4", "addr").stdout
    assert [line.split()[1] for line in none.splitlines()] == ["lo"]
    hosts = node.cli("run", "--rm", "--network", "host", "busybox", "cat", "/etc/hosts").stdout
    assert hosts == Path("/etc/hosts").read_text()
    clash = node.cli("run", "--rm", "--network", "none", "--network-alias", "x", "busybox", "true", check=False)
    assert clash.returncode == 125 and len(clash.stderr.strip().splitlines()) == 1
    hosts = node.cli("run", "--rm", "--add-host", "db:10.0.0.5", "busybox", "cat", "/etc/hosts").stdout
    assert hosts.endswith("\t".join(["10.0.0.5", "db"]) + "\n") and "127.0.0.1\tlocalhost" in hosts
    bad = node.cli("run", "--rm", "--add-host", "db", "busybox", "true", check=False)
    assert bad.returncode == 125 and bad.stderr.strip().endswith("invalid --add-host 'db': expected NAME:IP")
