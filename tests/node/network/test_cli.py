"""`pynode network …` through a real daemon: Docker's output and errors, and no kernel leftovers."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.node.network.conftest import host_links
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged


def _table_of(engine: EngineProcess) -> str:
    return engine.extra_args[engine.extra_args.index("--nft-table") + 1]


def _nft_exists(table: str) -> bool:
    return subprocess.run(["nft", "list", "table", "inet", table], capture_output=True).returncode == 0


def test_network_lifecycle_and_docker_output(engine: EngineProcess) -> None:
    table = _table_of(engine)
    default_bridge = f"{table[:14]}0"
    assert default_bridge in host_links() and _nft_exists(table)
    ls = engine.cli("network", "ls").stdout.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert sorted(line.split()[1:3] for line in ls[1:]) == [["bridge", "bridge"], ["host", "host"], ["none", "null"]]
    net_id = engine.cli("network", "create", "--label", "team=a", "-o",
                        f"com.docker.network.bridge.name=pb{table[-8:]}", "front").stdout.strip()
    assert len(net_id) == 64
    assert f"pb{table[-8:]}" in host_links()
    info = json.loads(engine.cli("network", "inspect", "front").stdout)[0]
    assert info["Id"] == net_id and info["Driver"] == "bridge" and info["Labels"] == {"team": "a"}
    assert info["IPAM"]["Config"][0]["Subnet"].endswith("/16")
    assert engine.cli("network", "ls", "-q", "--filter", "label=team=a").stdout.split() == [net_id[:12]]
    assert engine.cli("network", "ls", "--format", "{{.Name}}:{{.Driver}}", "-f", "name=fro").stdout == "front:bridge\n"
    engine.cli("network", "create", "--internal", "--subnet", "10.252.3.0/24", "--ip-range", "10.252.3.128/25",
               "back")
    assert engine.cli("network", "inspect", "-f", "{{.Internal}} {{json .IPAM.Config}}", "back").stdout.strip() == (
        'true [{"Subnet":"10.252.3.0/24","IPRange":"10.252.3.128/25","Gateway":"10.252.3.1"}]')
    assert engine.cli("network", "rm", "front").stdout.strip() == "front"
    assert f"pb{table[-8:]}" not in host_links()
    assert engine.cli("network", "prune", "-f").stdout.split() == ["Deleted", "Networks:", "back"]
    # restart: the default bridge comes back with the same subnet
    subnet = engine.cli("network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge").stdout
    engine.stop()
    assert default_bridge not in host_links() and not _nft_exists(table)  # nothing in use: nothing left
    engine.start()
    assert engine.cli("network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge").stdout == subnet
    assert default_bridge in host_links()


@pytest.mark.parametrize(("args", "message"), [
    (("network", "create", "-d", "ipvlan", "x"), "ipvlan is not available: this kernel has no ipvlan support"),
    (("network", "create", "-d", "macvlan", "-o", "parent=nosuch0", "x"), "parent interface nosuch0 does not exist"),
    (("network", "create", "--subnet", "10.252.4.0/24", "--gateway", "10.9.9.9", "x"), "not a usable address"),
    (("network", "create", "--subnet", "10.252.4.1/24", "x"), "it should be 10.252.4.0/24"),
    (("network", "rm", "nosuchnet"), "network nosuchnet not found"),
    (("network", "rm", "bridge"), "bridge is a pre-defined network and cannot be removed"),
    (("network", "inspect", "nosuchnet"), "not found"),
    (("network", "create", "-d", "nosuch", "x"), 'plugin "nosuch" not found'),
    (("network", "connect", "bridge", "nosuchcontainer"), "No such container: nosuchcontainer"),
    (("network", "disconnect", "bridge", "nosuchcontainer"), "No such container: nosuchcontainer"),
])
def test_bad_input_is_one_line_and_makes_nothing(engine: EngineProcess, args: tuple[str, ...], message: str) -> None:
    result = engine.cli(*args, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert len(engine.cli("network", "ls", "-q").stdout.split()) == 3
    rules = subprocess.run(["nft", "list", "table", "inet", _table_of(engine)], capture_output=True, text=True)
    assert "br-" not in rules.stdout  # no bridge of a refused network reached the rules


def test_overlapping_subnet_is_refused(engine: EngineProcess) -> None:
    engine.cli("network", "create", "--subnet", "10.252.5.0/24", "one")
    result = engine.cli("network", "create", "--subnet", "10.252.5.128/25", "two", check=False)
    assert result.returncode == 1 and "overlaps" in result.stderr
    assert engine.cli("network", "create", "one", check=False).stderr.strip().endswith(
        "network with name one already exists")
    engine.cli("network", "rm", "one")
