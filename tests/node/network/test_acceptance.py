"""The issue's acceptance list through the CLI with real containers (`pynode run`): names and aliases on
a user network, isolation, published ports from loopback and from another machine, masquerade and
--internal, and no leftovers after rm -f, network rm and a daemon restart."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.node.network.conftest import Client, host_links
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged

HTTPD = "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def node(engine: EngineProcess) -> EngineProcess:
    engine.cli("image", "bootstrap", "busybox")
    return engine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _run(node: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return node.cli("run", "--rm", *args, check=False, timeout=60)


def _table(node: EngineProcess) -> str:
    return node.extra_args[node.extra_args.index("--nft-table") + 1]


def test_containers_reach_each_other_by_name_and_alias_not_across_networks(node: EngineProcess) -> None:
    node.cli("network", "create", "front")
    node.cli("network", "create", "back")
    node.cli("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www", "busybox", "sh", "-c",
             HTTPD)
    assert _run(node, "--network", "front", "busybox", "ping", "-c1", "-W2", "web").returncode == 0
    fetched = _run(node, "--network", "front", "busybox", "timeout", "5", "wget", "-qO-", "http://web")
    assert fetched.stdout.strip() == "hello-from-web"
    assert _run(node, "--network", "front", "busybox", "ping", "-c1", "-W2", "www").returncode == 0
    ip = node.cli("inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "web").stdout.strip()
    assert _run(node, "--network", "back", "busybox", "ping", "-c1", "-W2", "web").returncode != 0
    assert _run(node, "--network", "back", "busybox", "ping", "-c1", "-W2", ip).returncode != 0
    assert _run(node, "busybox", "ping", "-c1", "-W2", "web").returncode != 0  # default bridge: no names
    node.cli("rm", "-f", "web")


def test_published_ports_from_loopback_and_another_machine(node: EngineProcess, client_ns: Client) -> None:
    loop_port, any_port = _free_port(), _free_port()
    node.cli("run", "-d", "--name", "lo", "-p", f"127.0.0.1:{loop_port}:80", "busybox", "sh", "-c", HTTPD)
    node.cli("run", "-d", "--name", "any", "-p", f"{any_port}:80", "busybox", "sh", "-c", HTTPD)
    curl = subprocess.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{loop_port}/"], capture_output=True, text=True)
    assert curl.stdout.strip() == "hello-from-web"
    remote = subprocess.run(["nsenter", f"--net={client_ns.path}", "timeout", "5", "busybox", "wget", "-qO-",
                             f"http://{client_ns.host_ip}:{any_port}/"], capture_output=True, text=True)
    assert remote.stdout.strip() == "hello-from-web"
    assert f"80/tcp -> 127.0.0.1:{loop_port}" in node.cli("port", "lo").stdout
    clash = node.cli("run", "-d", "-p", f"{any_port}:80", "busybox", "sh", "-c", HTTPD, check=False)
    assert clash.returncode != 0 and f"0.0.0.0:{any_port} failed: port is already allocated" in clash.stderr


def test_masquerade_out_and_none_from_internal(node: EngineProcess, client_ns: Client) -> None:
    assert _run(node, "busybox", "ping", "-c1", "-W2", client_ns.client_ip).returncode == 0
    node.cli("network", "create", "--internal", "inner")
    assert _run(node, "--network", "inner", "busybox", "ping", "-c1", "-W2", client_ns.client_ip).returncode != 0


def test_rm_network_rm_and_restart_leave_nothing(node: EngineProcess) -> None:
    table = _table(node)
    node.cli("network", "create", "gone")
    bridge = node.cli("network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}',
                      "gone").stdout.strip()
    node.cli("run", "-d", "--name", "web", "--network", "gone", "-p", f"{_free_port()}:80", "busybox", "sh", "-c",
             HTTPD)
    ports = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    made = {bridge} | {line.split(":")[1].strip().split("@")[0] for line in ports.splitlines()}
    assert len(made) == 2
    node.stop()
    node.start()  # the container outlives the daemon; its rules come back once, not twice
    rules = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout
    assert rules.count("dnat ip to") == 1
    node.cli("rm", "-f", "web")
    node.cli("network", "rm", "gone")
    assert made & host_links() == set()
    rules = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout
    assert "dnat ip to" not in rules and "br-" not in rules
    node.stop()
    assert subprocess.run(["nft", "list", "table", "inet", table], capture_output=True).returncode != 0
    node.start()
