"""IPAM is pure: subnets, gateways, ranges and addresses decided from observations passed in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from node.errors import Conflict, InvalidArgument
from node.network.ipam import (
    DEFAULT_POOLS,
    IpamConfig,
    allocate_address,
    choose_subnet,
    mac_for,
    parse_pools,
    plan_ipam,
)

N = IPv4Network


def test_default_pools_follow_dockers_order() -> None:
    assert choose_subnet(DEFAULT_POOLS, []) == N("172.17.0.0/16")
    assert choose_subnet(DEFAULT_POOLS, [N("172.17.0.0/16")]) == N("172.18.0.0/16")
    every_172 = [N(f"172.{i}.0.0/16") for i in range(17, 32)]
    assert choose_subnet(DEFAULT_POOLS, every_172) == N("192.168.0.0/20")
    assert choose_subnet(DEFAULT_POOLS, [*every_172, N("192.168.0.0/24")]) == N("192.168.16.0/20")


def test_auto_allocation_avoids_host_routes() -> None:
    ipam = plan_ipam(subnet=None, gateway=None, ip_range=None, pools=DEFAULT_POOLS, networks_in_use=[],
                     host_routes=[N("172.16.0.0/12")])
    assert ipam.subnet == N("192.168.0.0/20")
    assert ipam.gateway == IPv4Address("192.168.0.1")


def test_configured_pools_replace_the_defaults() -> None:
    pools = parse_pools([{"base": "10.10.0.0/16", "size": 24}])
    assert choose_subnet(pools, [N("10.10.0.0/24")]) == N("10.10.1.0/24")
    assert parse_pools([]) == DEFAULT_POOLS
    with pytest.raises(InvalidArgument):
        parse_pools([{"base": "10.10.0.0/16", "size": 8}])


def test_pools_exhausted_is_a_clear_error() -> None:
    pools = parse_pools([{"base": "10.10.0.0/23", "size": 24}])
    with pytest.raises(Conflict, match="non-overlapping"):
        choose_subnet(pools, [N("10.10.0.0/23")])


def test_explicit_subnet_gateway_and_range() -> None:
    ipam = plan_ipam(subnet="10.5.0.0/16", gateway="10.5.0.254", ip_range="10.5.1.0/24", pools=DEFAULT_POOLS,
                     networks_in_use=[])
    assert ipam == IpamConfig(subnet=N("10.5.0.0/16"), gateway=IPv4Address("10.5.0.254"), ip_range=N("10.5.1.0/24"))
    assert ipam.to_docker() == {"Subnet": "10.5.0.0/16", "Gateway": "10.5.0.254", "IPRange": "10.5.1.0/24"}


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"subnet": "10.5.0.0/24", "networks_in_use": [N("10.5.0.0/16")]}, Conflict, "overlaps"),
    ({"subnet": "10.5.0.0/24", "host_routes": [N("10.5.0.128/25")]}, Conflict, "host route"),
    ({"subnet": "10.5.0.0/24", "gateway": "10.6.0.1"}, InvalidArgument, "not a usable address"),
    ({"subnet": "10.5.0.0/24", "gateway": "10.5.0.255"}, InvalidArgument, "not a usable address"),
    ({"subnet": "10.5.0.0/24", "ip_range": "10.6.0.0/25"}, InvalidArgument, "not inside"),
    ({"subnet": "10.5.0.1/24"}, InvalidArgument, "it should be 10.5.0.0/24"),
    ({"subnet": "nonsense"}, InvalidArgument, "invalid subnet"),
    ({"subnet": "fd00::/64"}, InvalidArgument, "only IPv4"),
    ({"gateway": "10.5.0.1"}, InvalidArgument, "need --subnet"),
])
def test_bad_subnets_are_refused(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args: dict[str, object] = {"subnet": None, "gateway": None, "ip_range": None, "pools": DEFAULT_POOLS,
                               "networks_in_use": []}
    with pytest.raises(error, match=message):
        plan_ipam(**{**args, **kwargs})  # type: ignore[arg-type]


def test_addresses_skip_gateway_and_taken_and_honour_the_range() -> None:
    ipam = IpamConfig(subnet=N("10.5.0.0/24"), gateway=IPv4Address("10.5.0.1"))
    assert allocate_address(ipam, []) == IPv4Address("10.5.0.2")
    assert allocate_address(ipam, [IPv4Address("10.5.0.2")]) == IPv4Address("10.5.0.3")
    ranged = IpamConfig(subnet=N("10.5.0.0/24"), gateway=IPv4Address("10.5.0.1"), ip_range=N("10.5.0.128/25"))
    assert allocate_address(ranged, []) == IPv4Address("10.5.0.129")
    assert allocate_address(ranged, [], "10.5.0.9") == IPv4Address("10.5.0.9")


def test_requested_address_outside_or_taken_is_refused() -> None:
    ipam = IpamConfig(subnet=N("10.5.0.0/24"), gateway=IPv4Address("10.5.0.1"))
    with pytest.raises(InvalidArgument, match="no configured subnet"):
        allocate_address(ipam, [], "10.6.0.5")
    with pytest.raises(Conflict, match="already in use"):
        allocate_address(ipam, [IPv4Address("10.5.0.5")], "10.5.0.5")
    with pytest.raises(Conflict, match="already in use"):
        allocate_address(ipam, [], "10.5.0.1")


def test_full_subnet() -> None:
    ipam = IpamConfig(subnet=N("10.5.0.0/30"), gateway=IPv4Address("10.5.0.1"))
    with pytest.raises(Conflict, match="no available"):
        allocate_address(ipam, [IPv4Address("10.5.0.2")])


def test_mac_follows_the_address() -> None:
    assert mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
