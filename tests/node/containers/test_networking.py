"""The container service's networking decisions (node/containers/networking.py), against a stub that only
knows networks: which networks a create joins, which --ip/--network-alias it refuses, connect/disconnect."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

import pytest

from node.containers.model import Container
from node.containers.networking import ContainerNetworking
from node.errors import Conflict, InvalidArgument, NotFound
from node.network.ipam import IpamConfig
from node.network.model import Network


class _Networks:
    def __init__(self) -> None:
        def net(name: str, driver: str, subnet: str | None = None) -> Network:
            ipam = None if subnet is None else IpamConfig(subnet=IPv4Network(subnet),
                                                          gateway=IPv4Network(subnet).network_address + 1)
            return Network(id=f"{name}-id".ljust(64, "0"), name=name, driver=driver, created="", ipam=ipam)

        self.all = [net("bridge", "bridge", "172.17.0.0/16"), net("host", "host"), net("none", "null"),
                    net("front", "bridge", "10.1.0.0/24"), net("back", "bridge", "10.2.0.0/24")]

    def find(self, ref: str) -> Network:
        for n in self.all:
            if ref in (n.name, n.id) or n.id.startswith(ref):
                return n
        raise NotFound(f"network {ref} not found")


def _plan(mode: str | None, endpoints: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    net = ContainerNetworking(_Networks())  # type: ignore[arg-type]
    return net.plan_endpoints({"NetworkMode": mode} if mode else {},
                              {"EndpointsConfig": endpoints} if endpoints is not None else None)


def test_default_is_the_bridge_and_user_networks_keep_aliases_and_ip() -> None:
    assert _plan(None) == ("bridge", {"bridge": {"Aliases": None, "IPAMConfig": None}})
    assert _plan("default")[0] == "bridge"
    mode, planned = _plan("front", {"front": {"Aliases": ["www"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}},
                                    "back": {}})
    assert mode == "front"
    assert list(planned) == ["front", "back"]  # the mode's network first: it is eth0
    assert planned["front"] == {"Aliases": ["www"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}}
    assert _plan("front-id")[1].keys() == {"front"}  # an ID prefix is kept as the network's name
    assert _plan("host") == ("host", {}) and _plan("none") == ("none", {})


@pytest.mark.parametrize(("mode", "endpoints", "error", "message"), [
    ("nosuch", None, NotFound, "network nosuch not found"),
    (None, {"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.9"}}}, InvalidArgument, "user defined networks only"),
    (None, {"bridge": {"Aliases": ["x"]}}, InvalidArgument, "alias is supported only"),
    ("front", {"front": {"IPAMConfig": {"IPv4Address": "10.9.0.1"}}}, InvalidArgument,
     "invalid --ip 10.9.0.1: not in network front's subnet 10.1.0.0/24"),
    ("front", {"front": {"IPAMConfig": {"IPv4Address": "nope"}}}, InvalidArgument, "invalid --ip nope"),
    ("none", {"none": {"Aliases": ["x"]}}, InvalidArgument, "alias is supported only"),
    ("host", {"front": {}}, InvalidArgument, "conflicting options"),
    ("container:abc", None, InvalidArgument, "not supported"),
])
def test_refused_with_the_reason(mode: str | None, endpoints: dict[str, Any] | None, error: type[Exception],
                                 message: str) -> None:
    with pytest.raises(error, match=message.replace(".", r"\.").replace("(", r"\(")):
        _plan(mode, endpoints)


def _container(mode: str, endpoints: dict[str, Any]) -> Container:
    return Container(id="c" * 64, name="web", created="", path="sh", args=(), image_id="i", config={},
                     host_config={"NetworkMode": mode}, endpoints_config=endpoints)


def test_connect_and_disconnect_decisions() -> None:
    net = ContainerNetworking(_Networks())  # type: ignore[arg-type]
    c = _container("bridge", {"bridge": {}})
    assert net.plan_connect(c, "front", aliases=["a"], ipv4_address="10.1.0.5") == (
        "front", {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}})
    with pytest.raises(Conflict, match="already exists in network bridge"):
        net.plan_connect(c, "bridge", aliases=(), ipv4_address=None)
    with pytest.raises(Conflict, match="uses --network host"):
        net.plan_connect(_container("host", {}), "front", aliases=(), ipv4_address=None)
    assert net.plan_disconnect(c, "bridge", force=False) == "bridge"
    with pytest.raises(NotFound, match="is not connected to network front"):
        net.plan_disconnect(c, "front", force=False)
    assert net.plan_disconnect(c, "front", force=True) is None


def test_extra_hosts() -> None:
    net = ContainerNetworking(_Networks())  # type: ignore[arg-type]
    assert net.extra_hosts(["db:10.0.0.5", "gw:host-gateway", "six:::1", "new=10.0.0.6"]) == [
        ("db", "10.0.0.5"), ("gw", "172.17.0.1"), ("six", "::1"), ("new", "10.0.0.6")]
    for bad in ("db", "db:nope", ":10.0.0.5"):
        with pytest.raises(InvalidArgument, match="invalid --add-host"):
            net.extra_hosts([bad])
