"""IPAM: pure decisions about subnets and addresses. Observations (subnets in use, host routes) come in
as arguments; nothing here touches the kernel or the disk.

Default pools follow Docker's: 172.17.0.0/16, then 172.18.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 cut
into /20s; `default-address-pools` in daemon.json (`[{"base": "10.10.0.0/16", "size": 24}]`) replaces them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from node.errors import Conflict, InvalidArgument


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressPool:
    base: IPv4Network
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IpamConfig:
    """One network's addressing: containers get addresses from `ip_range` (the whole subnet if None)."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None

    def to_docker(self) -> dict[str, str]:
        out = {"Subnet": str(self.subnet)}
        if self.ip_range is not None:
            out["IPRange"] = str(self.ip_range)
        return out | {"Gateway": str(self.gateway)}  # Docker's field order


DEFAULT_POOLS: tuple[AddressPool, ...] = (
    AddressPool(base=IPv4Network("172.17.0.0/16"), size=16),
    AddressPool(base=IPv4Network("172.18.0.0/15"), size=16),
    AddressPool(base=IPv4Network("172.20.0.0/14"), size=16),
    AddressPool(base=IPv4Network("172.24.0.0/13"), size=16),
    AddressPool(base=IPv4Network("192.168.0.0/16"), size=20),
)


def parse_pools(raw: Sequence[Mapping[str, Any]]) -> tuple[AddressPool, ...]:
    """daemon.json's `default-address-pools`; empty means Docker's defaults."""
    if not raw:
        return DEFAULT_POOLS
    pools = []
    for entry in raw:
        base = parse_network(str(entry.get("base", "")), what="default-address-pools base")
        size = int(entry.get("size", 0))
        if not base.prefixlen <= size <= 30:
            raise InvalidArgument(f"default-address-pools: size {size} does not fit base {base}")
        pools.append(AddressPool(base=base, size=size))
    return tuple(pools)


def parse_network(text: str, *, what: str = "subnet") -> IPv4Network:
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {what} {text!r}: {exc}") from exc
    if not isinstance(loose, IPv4Network):
        raise InvalidArgument(f"invalid {what} {text!r}: only IPv4 is supported")
    if loose.network_address != ipaddress.ip_interface(text).ip:
        raise InvalidArgument(f"invalid {what} {text}: it should be {loose}")
    return loose


def parse_address(text: str, *, what: str = "address") -> IPv4Address:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {what} {text!r}") from exc
    if not isinstance(addr, IPv4Address):
        raise InvalidArgument(f"invalid {what} {text!r}: only IPv4 is supported")
    return addr


def candidate_subnets(pools: Iterable[AddressPool]) -> Iterator[IPv4Network]:
    for pool in pools:
        yield from pool.base.subnets(new_prefix=pool.size)


def overlapping(subnet: IPv4Network, others: Iterable[IPv4Network]) -> IPv4Network | None:
    return next((other for other in others if subnet.overlaps(other)), None)


def choose_subnet(pools: Iterable[AddressPool], in_use: Sequence[IPv4Network]) -> IPv4Network:
    """The first pool subnet that overlaps nothing in `in_use` (our networks and the host's routes)."""
    for candidate in candidate_subnets(pools):
        if overlapping(candidate, in_use) is None:
            return candidate
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults "
                   "to assign to the network")


def plan_ipam(
    *,
    subnet: str | None,
    gateway: str | None,
    ip_range: str | None,
    pools: Iterable[AddressPool],
    networks_in_use: Sequence[IPv4Network],
    host_routes: Sequence[IPv4Network] = (),
) -> IpamConfig:
    """Decide a new network's subnet, gateway and range, or refuse with one line saying why.

    `networks_in_use` are our other networks' subnets (overlap is always refused); `host_routes` are the
    host's non-default routes (auto-allocation avoids them; an explicit subnet overlapping one is refused).
    """
    if subnet is None:
        if gateway is not None or ip_range is not None:
            raise InvalidArgument("--gateway and --ip-range need --subnet")
        chosen = choose_subnet(pools, [*networks_in_use, *host_routes])
        return IpamConfig(subnet=chosen, gateway=first_host(chosen))
    net = parse_network(subnet)
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {net} is too small: use a /30 or larger")
    clash = overlapping(net, networks_in_use)
    if clash is not None:
        raise Conflict(f"Pool overlaps with other one on this address space: {net} overlaps {clash}")
    route = overlapping(net, host_routes)
    if route is not None:
        raise Conflict(f"subnet {net} overlaps the host route to {route}")
    return IpamConfig(subnet=net, gateway=plan_gateway(net, gateway), ip_range=plan_range(net, ip_range))


def plan_gateway(net: IPv4Network, gateway: str | None) -> IPv4Address:
    if gateway is None:
        return first_host(net)
    addr = parse_address(gateway, what="gateway")
    if addr not in net or addr in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"gateway {addr} is not a usable address of subnet {net}")
    return addr


def plan_range(net: IPv4Network, ip_range: str | None) -> IPv4Network | None:
    if ip_range is None:
        return None
    rng = parse_network(ip_range, what="ip-range")
    if not rng.subnet_of(net):
        raise InvalidArgument(f"ip-range {rng} is not inside subnet {net}")
    return rng


def first_host(net: IPv4Network) -> IPv4Address:
    return net.network_address + 1


def allocate_address(
    ipam: IpamConfig, taken: Iterable[IPv4Address], requested: str | None = None
) -> IPv4Address:
    """A container's address: `requested` if it is free and inside the subnet, else the first free one."""
    used = {*taken, ipam.gateway, ipam.subnet.network_address, ipam.subnet.broadcast_address}
    if requested is not None:
        addr = parse_address(requested, what="IP address")
        if addr not in ipam.subnet:
            raise InvalidArgument(f"no configured subnet contains the IP address {addr} (subnet {ipam.subnet})")
        if addr in used:
            raise Conflict(f"Address already in use: {addr}")
        return addr
    for addr in (ipam.ip_range or ipam.subnet).hosts():
        if addr not in used:
            return addr
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {ipam.ip_range or ipam.subnet}")


def mac_for(addr: IPv4Address) -> str:
    """Docker's MAC for an address: 02:42 followed by the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)
