"""Address arithmetic for overlay networks: subnets from pools, VNIs, addresses in a subnet (pure).

Cluster networks never overlap each other nor the nodes' own (underlay) addresses. Addresses are handed
out lowest first, but an address some task held recently is given out again only when nothing else is
left: a task's container may still be going away on its node when the store already says it ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, ip_network

from orchestrator.errors import OrchestratorError

DEFAULT_POOLS = ("10.0.0.0/8",)  # Swarm's default-addr-pool
DEFAULT_SUBNET_SIZE = 24
INGRESS_SUBNET = "10.0.0.0/24"
INGRESS_VNI = 4096
FIRST_VNI = 4097
MAX_VNI = 0xFFFFFF
SMALLEST_PREFIX = 30  # a gateway and one task


class AllocationError(OrchestratorError):
    """A subnet, VNI, address or port could not be given; the message says which and why."""


def parse_subnet(text: str, *, what: str = "subnet") -> IPv4Network:
    try:
        net = ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise AllocationError(f"invalid {what} {text!r}: {exc}") from None
    if not isinstance(net, IPv4Network):
        raise AllocationError(f"invalid {what} {text!r}: only IPv4 subnets are supported")
    if net.prefixlen > SMALLEST_PREFIX:
        raise AllocationError(f"{what} {text} is too small: a network needs at least a /{SMALLEST_PREFIX}")
    return net


def check_free(subnet: IPv4Network, taken: Iterable[tuple[str, IPv4Network]], *, underlay: Iterable[IPv4Address]
               ) -> None:
    """Refuse `subnet` when it overlaps another network's (named) or holds a node's own address."""
    for name, other in taken:
        if subnet.overlaps(other):
            raise AllocationError(f"subnet {subnet} overlaps network {name} ({other})")
    for addr in underlay:
        if addr in subnet:
            raise AllocationError(f"subnet {subnet} holds node address {addr}: it would hide the node's own network")


def pick_subnet(taken: Sequence[IPv4Network], *, underlay: Iterable[IPv4Address],
                pools: Sequence[str] = DEFAULT_POOLS, size: int = DEFAULT_SUBNET_SIZE) -> IPv4Network:
    """The first /`size` of the pools that overlaps no taken subnet and no node address."""
    nodes = list(underlay)
    for pool_text in pools:
        pool = parse_subnet(pool_text, what="address pool")
        if size < pool.prefixlen:
            continue
        busy = sorted((t for t in taken if t.overlaps(pool)), key=lambda n: n.network_address)
        for candidate in pool.subnets(new_prefix=size):
            if any(candidate.overlaps(t) for t in busy) or any(a in candidate for a in nodes):
                continue
            return candidate
    raise AllocationError(f"no free /{size} subnet is left in the address pools {', '.join(pools)}")


def pick_vni(taken: Iterable[int]) -> int:
    used = set(taken)
    for vni in range(FIRST_VNI, MAX_VNI + 1):
        if vni not in used:
            return vni
    raise AllocationError("no VXLAN network identifier is left")


def gateway_of(subnet: IPv4Network, gateway: str = "") -> IPv4Address:
    if not gateway:
        return subnet.network_address + 1
    try:
        addr = IPv4Address(gateway.split("/")[0])
    except ValueError:
        raise AllocationError(f"invalid gateway {gateway!r}") from None
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise AllocationError(f"gateway {addr} is not a usable address of subnet {subnet}")
    return addr


def pick_address(subnet: IPv4Network, *, held: set[IPv4Address], recent: set[IPv4Address]) -> IPv4Address | None:
    """The lowest usable address not held; one not used recently if there is any. None when full."""
    fallback = None
    for addr in subnet.hosts():
        if addr in held:
            continue
        if addr not in recent:
            return addr
        if fallback is None:
            fallback = addr
    return fallback


def with_prefix(addr: IPv4Address, subnet: IPv4Network) -> str:
    return f"{addr}/{subnet.prefixlen}"


def address_of(cidr: str) -> IPv4Address:
    return IPv4Address(cidr.split("/")[0])
