"""Address arithmetic of overlay networks (ipam.py) and a new network's VNI and subnet (allocator/networks.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from node.network.options import MTU_OPT, VNI_OPT
from orchestrator.allocator.ipam import (
    FIRST_VNI,
    AllocationError,
    check_free,
    gateway_of,
    parse_subnet,
    pick_address,
    pick_subnet,
    pick_vni,
)
from orchestrator.allocator.networks import plan_network, underlay_addresses
from orchestrator.model import Network, NetworkSpec

A = IPv4Address
N = IPv4Network


# --- parse_subnet -------------------------------------------------------------------------------------
def test_parse_subnet_reads_an_ipv4_network() -> None:
    assert parse_subnet(" 10.1.2.0/24 ") == N("10.1.2.0/24")
    assert parse_subnet("10.1.2.0/30") == N("10.1.2.0/30")  # a gateway and one task


@pytest.mark.parametrize("text", ["banana", "10.1.2.0/33", "10.1.2.1/24", ""])
def test_parse_subnet_refuses_invalid_text_naming_it(text: str) -> None:
    with pytest.raises(AllocationError, match=f"invalid subnet {text!r}"):
        parse_subnet(text)


def test_parse_subnet_refuses_ipv6() -> None:
    with pytest.raises(AllocationError, match="only IPv4"):
        parse_subnet("fd00::/64")


@pytest.mark.parametrize("text", ["10.1.2.0/31", "10.1.2.1/32"])
def test_parse_subnet_refuses_a_subnet_too_small_for_a_gateway_and_a_task(text: str) -> None:
    with pytest.raises(AllocationError, match=r"too small: a network needs at least a /30"):
        parse_subnet(text)


def test_parse_subnet_names_what_it_parses() -> None:
    with pytest.raises(AllocationError, match="invalid address pool 'x'"):
        parse_subnet("x", what="address pool")


# --- check_free ---------------------------------------------------------------------------------------
def test_check_free_accepts_a_disjoint_subnet() -> None:
    check_free(N("10.0.2.0/24"), [("back", N("10.0.1.0/24"))], underlay=[A("192.168.1.10")])


@pytest.mark.parametrize("other", ["10.0.1.0/24", "10.0.0.0/16", "10.0.1.128/25"])
def test_check_free_refuses_an_overlap_naming_the_network(other: str) -> None:
    with pytest.raises(AllocationError, match=rf"subnet 10.0.1.0/24 overlaps network back \({other}\)"):
        check_free(N("10.0.1.0/24"), [("front", N("10.9.0.0/24")), ("back", N(other))], underlay=[])


def test_check_free_refuses_a_subnet_holding_a_node_address() -> None:
    with pytest.raises(AllocationError, match="holds node address 192.168.1.10"):
        check_free(N("192.168.1.0/24"), [], underlay=[A("10.9.9.9"), A("192.168.1.10")])


# --- pick_subnet --------------------------------------------------------------------------------------
def test_pick_subnet_gives_the_first_24_of_the_default_pool() -> None:
    assert pick_subnet([], underlay=[]) == N("10.0.0.0/24")


def test_pick_subnet_skips_taken_subnets_whatever_their_size() -> None:
    taken = [N("10.0.0.0/24"), N("10.0.1.0/25"), N("10.0.2.0/23")]
    assert pick_subnet(taken, underlay=[]) == N("10.0.4.0/24")


def test_pick_subnet_skips_subnets_holding_node_addresses() -> None:
    assert pick_subnet([N("10.0.0.0/24")], underlay=[A("10.0.1.7"), A("192.168.1.1")]) == N("10.0.2.0/24")


def test_pick_subnet_uses_the_pools_in_order_and_the_size() -> None:
    pools = ("10.9.0.0/23", "172.20.0.0/16")
    assert pick_subnet([], underlay=[], pools=pools, size=26) == N("10.9.0.0/26")
    full = [N("10.9.0.0/24"), N("10.9.1.0/24")]
    assert pick_subnet(full, underlay=[], pools=pools) == N("172.20.0.0/24")


def test_pick_subnet_skips_a_pool_smaller_than_the_size() -> None:
    assert pick_subnet([], underlay=[], pools=("10.9.0.0/25", "10.8.0.0/16")) == N("10.8.0.0/24")


def test_pick_subnet_says_when_the_pools_are_exhausted() -> None:
    with pytest.raises(AllocationError, match=r"no free /24 subnet is left in the address pools 10.9.0.0/23, "
                                              r"10.8.0.0/24"):
        pick_subnet([N("10.9.0.0/24"), N("10.8.0.0/24")], underlay=[A("10.9.1.1")],
                    pools=("10.9.0.0/23", "10.8.0.0/24"))


def test_pick_subnet_refuses_an_invalid_pool() -> None:
    with pytest.raises(AllocationError, match="invalid address pool"):
        pick_subnet([], underlay=[], pools=("10.0.0.1/8",))


# --- pick_vni, gateway_of -----------------------------------------------------------------------------
def test_pick_vni_gives_the_first_free_from_4097() -> None:
    assert pick_vni([]) == FIRST_VNI == 4097
    assert pick_vni([4096, 4097, 4098, 4100]) == 4099


def test_gateway_of_defaults_to_the_first_address() -> None:
    assert gateway_of(N("10.0.1.0/24")) == A("10.0.1.1")


def test_gateway_of_accepts_a_usable_address_with_or_without_prefix() -> None:
    assert gateway_of(N("10.0.1.0/24"), "10.0.1.254") == A("10.0.1.254")
    assert gateway_of(N("10.0.1.0/24"), "10.0.1.9/24") == A("10.0.1.9")


@pytest.mark.parametrize("gateway", ["10.0.2.1", "10.0.1.0", "10.0.1.255"])
def test_gateway_of_refuses_an_address_outside_or_at_the_edges(gateway: str) -> None:
    with pytest.raises(AllocationError, match=f"gateway {gateway} is not a usable address of subnet 10.0.1.0/24"):
        gateway_of(N("10.0.1.0/24"), gateway)


def test_gateway_of_refuses_invalid_text() -> None:
    with pytest.raises(AllocationError, match="invalid gateway 'nope'"):
        gateway_of(N("10.0.1.0/24"), "nope")


# --- pick_address -------------------------------------------------------------------------------------
def test_pick_address_gives_the_lowest_free() -> None:
    subnet = N("10.0.1.0/24")
    assert pick_address(subnet, held={A("10.0.1.1")}, recent=set()) == A("10.0.1.2")
    assert pick_address(subnet, held={A("10.0.1.1"), A("10.0.1.2"), A("10.0.1.4")}, recent=set()) == A("10.0.1.3")


def test_pick_address_prefers_addresses_not_used_recently() -> None:
    subnet = N("10.0.1.0/24")
    got = pick_address(subnet, held={A("10.0.1.1")}, recent={A("10.0.1.2"), A("10.0.1.3")})
    assert got == A("10.0.1.4")


def test_pick_address_falls_back_to_the_lowest_recent_one() -> None:
    subnet = N("10.0.1.0/29")  # .1-.6
    held = {A(f"10.0.1.{i}") for i in (1, 2, 4, 6)}
    assert pick_address(subnet, held=held, recent={A("10.0.1.5"), A("10.0.1.3")}) == A("10.0.1.3")


def test_pick_address_is_none_when_full() -> None:
    subnet = N("10.0.1.0/30")  # .1 and .2
    assert pick_address(subnet, held={A("10.0.1.1"), A("10.0.1.2")}, recent=set()) is None
    assert pick_address(subnet, held={A("10.0.1.1")}, recent=set()) == A("10.0.1.2")


# --- plan_network -------------------------------------------------------------------------------------
def stored(nid: str, name: str, subnet: str, vni: int) -> Network:
    return Network(id=nid, spec=NetworkSpec(name=name, subnets=(subnet,)), vni=vni, subnet=subnet,
                   gateway=str(N(subnet).network_address + 1))


INGRESS = Network(id="ing", spec=NetworkSpec(name="ingress", ingress=True, subnets=("10.0.0.0/24",)), vni=4096,
                  subnet="10.0.0.0/24", gateway="10.0.0.1")
NODES = [A("192.168.1.10"), A("192.168.1.11")]


def plan(spec: NetworkSpec, existing: list[Network] | None = None, **kw: object) -> Network:
    return plan_network(spec, network_id="new", existing=[INGRESS] if existing is None else existing,
                        underlay=NODES, now=5.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("driver", ["bridge", "macvlan", "host"])
def test_plan_network_refuses_a_driver_other_than_overlay(driver: str) -> None:
    with pytest.raises(AllocationError, match=f"network web: driver '{driver}' is not a cluster driver: swarm "
                                              "networks use overlay") as caught:
        plan(NetworkSpec(name="web", driver=driver))
    assert "create them with pynode" in str(caught.value)


def test_plan_network_refuses_two_subnets() -> None:
    with pytest.raises(AllocationError, match=r"network web: give one subnet \(got 10.5.0.0/24, 10.6.0.0/24\)"):
        plan(NetworkSpec(name="web", subnets=("10.5.0.0/24", "10.6.0.0/24")))


def test_plan_network_refuses_an_explicit_subnet_overlapping_another_network() -> None:
    with pytest.raises(AllocationError, match=r"network web: subnet 10.0.0.0/16 overlaps network ingress"):
        plan(NetworkSpec(name="web", subnets=("10.0.0.0/16",)))


def test_plan_network_refuses_an_explicit_subnet_holding_a_node() -> None:
    with pytest.raises(AllocationError, match="network web: subnet 192.168.1.0/24 holds node address 192.168.1.10"):
        plan(NetworkSpec(name="web", subnets=("192.168.1.0/24",)))


def test_plan_network_refuses_an_invalid_explicit_subnet_naming_the_network() -> None:
    with pytest.raises(AllocationError, match="network web: invalid subnet"):
        plan(NetworkSpec(name="web", subnets=("10.5.0.1/24",)))


def test_plan_network_keeps_a_free_explicit_subnet_and_its_first_address_as_gateway() -> None:
    net = plan(NetworkSpec(name="web", subnets=("10.5.0.0/16",)))
    assert (net.subnet, net.gateway) == ("10.5.0.0/16", "10.5.0.1")


def test_plan_network_picks_a_free_subnet_when_none_is_given() -> None:
    existing = [INGRESS, stored("a", "a", "10.0.1.0/24", 4097)]
    net = plan(NetworkSpec(name="web"), existing)
    assert (net.subnet, net.gateway) == ("10.0.2.0/24", "10.0.2.1")


def test_plan_network_picks_around_node_addresses_and_from_given_pools() -> None:
    net = plan_network(NetworkSpec(name="web"), network_id="new", existing=[], underlay=[A("172.30.0.5")], now=1.0,
                       pools=("172.30.0.0/16",), size=28)
    assert net.subnet == "172.30.0.16/28"


def test_plan_network_chooses_the_first_free_vni_from_4097() -> None:
    assert plan(NetworkSpec(name="web")).vni == 4097  # ingress holds 4096
    existing = [INGRESS, stored("a", "a", "10.0.1.0/24", 4097), stored("b", "b", "10.0.2.0/24", 4099)]
    assert plan(NetworkSpec(name="web"), existing).vni == 4098


def test_plan_network_takes_a_requested_vni_and_drops_the_option() -> None:
    spec = NetworkSpec(name="web", options={VNI_OPT: " 5000 ", MTU_OPT: "1400"})
    net = plan(spec)
    assert net.vni == 5000
    assert dict(net.spec.options) == {MTU_OPT: "1400"}


def test_plan_network_refuses_a_requested_vni_that_is_taken() -> None:
    existing = [INGRESS, stored("a", "a", "10.0.1.0/24", 5000)]
    with pytest.raises(AllocationError, match="network web: VNI 5000 is used by another network"):
        plan(NetworkSpec(name="web", options={VNI_OPT: "5000"}), existing)
    with pytest.raises(AllocationError, match="VNI 4096 is used"):
        plan(NetworkSpec(name="web"), vni=4096)


@pytest.mark.parametrize("raw", ["abc", "0", "16777216", "5000,5001", "-3"])
def test_plan_network_refuses_a_bad_vni_option(raw: str) -> None:
    with pytest.raises(AllocationError, match=f"network web: {VNI_OPT}={raw}: a VNI is one integer"):
        plan(NetworkSpec(name="web", options={VNI_OPT: raw}))


@pytest.mark.parametrize("raw", ["67", "65536", "1500b", ""])
def test_plan_network_refuses_a_bad_mtu(raw: str) -> None:
    with pytest.raises(AllocationError, match=f"network web: {MTU_OPT}={raw}: an MTU is an integer from 68"):
        plan(NetworkSpec(name="web", options={MTU_OPT: raw}))


@pytest.mark.parametrize("raw", ["68", "1450", "65535"])
def test_plan_network_accepts_an_mtu_in_range(raw: str) -> None:
    assert plan(NetworkSpec(name="web", options={MTU_OPT: raw})).spec.options[MTU_OPT] == raw


def test_plan_network_stores_the_spec_with_its_subnet_and_times() -> None:
    spec = NetworkSpec(name="web", labels={"a": "b"}, options={"x": "y"}, attachable=True, internal=True)
    net = plan(spec)
    assert net.id == "new" and net.created_at == net.updated_at == 5.0
    assert net.spec == NetworkSpec(name="web", driver="overlay", labels={"a": "b"}, options={"x": "y"},
                                   subnets=(net.subnet,), attachable=True, internal=True, ingress=False)
    assert net.node_addresses == {}


def test_underlay_addresses_skips_what_is_no_ipv4_address() -> None:
    assert underlay_addresses(["192.168.1.10", "", "host.example", "fd00::1", "10.0.0.2"]) == [
        A("192.168.1.10"), A("10.0.0.2")]
