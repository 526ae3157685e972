"""A new cluster network's VNI, subnet and gateway, decided when it is created (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network

from node.network.options import MTU_OPT, VNI_OPT
from orchestrator.allocator.ipam import (
    DEFAULT_POOLS,
    DEFAULT_SUBNET_SIZE,
    MAX_VNI,
    AllocationError,
    check_free,
    gateway_of,
    parse_subnet,
    pick_subnet,
    pick_vni,
)
from orchestrator.model import Network, NetworkSpec

DRIVERS = ("overlay",)


def plan_network(spec: NetworkSpec, *, network_id: str, existing: Sequence[Network], underlay: Iterable[IPv4Address],
                 now: float, pools: Sequence[str] = DEFAULT_POOLS, size: int = DEFAULT_SUBNET_SIZE,
                 vni: int | None = None) -> Network:
    """The network as stored: refuses a driver other than overlay, a subnet that overlaps another network's
    or holds a node's address, a taken VNI, a bad MTU; each message names the network and the value."""
    where = f"network {spec.name}"
    if spec.driver not in DRIVERS:
        raise AllocationError(f"{where}: driver {spec.driver!r} is not a cluster driver: swarm networks use overlay "
                              "(bridge, host and macvlan networks are each node's own: create them with pynode)")
    if len(spec.subnets) > 1:
        raise AllocationError(f"{where}: give one subnet (got {', '.join(spec.subnets)})")
    _check_mtu(spec, where)
    nodes = list(underlay)
    taken = [(n.spec.name, IPv4Network(n.subnet)) for n in existing if n.subnet]
    try:
        if spec.subnets:
            subnet = parse_subnet(spec.subnets[0])
            check_free(subnet, taken, underlay=nodes)
        else:
            subnet = pick_subnet([t for _, t in taken], underlay=nodes, pools=pools, size=size)
    except AllocationError as exc:
        raise AllocationError(f"{where}: {exc}") from None
    gateway = gateway_of(subnet)
    chosen = vni if vni is not None else _requested_vni(spec, where)
    used = {n.vni for n in existing}
    if chosen is None:
        chosen = pick_vni(used)
    elif chosen in used:
        raise AllocationError(f"{where}: VNI {chosen} is used by another network")
    options = {k: v for k, v in spec.options.items() if k != VNI_OPT}
    stored = NetworkSpec(name=spec.name, driver=spec.driver, labels=dict(spec.labels), options=options,
                         subnets=(str(subnet),), attachable=spec.attachable, internal=spec.internal,
                         ingress=spec.ingress)
    return Network(id=network_id, spec=stored, vni=chosen, subnet=str(subnet), gateway=str(gateway),
                   created_at=now, updated_at=now)


def _requested_vni(spec: NetworkSpec, where: str) -> int | None:
    raw = spec.options.get(VNI_OPT, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_VNI:
        raise AllocationError(f"{where}: {VNI_OPT}={raw}: a VNI is one integer from 1 to {MAX_VNI}")
    return int(raw)


def _check_mtu(spec: NetworkSpec, where: str) -> None:
    raw = spec.options.get(MTU_OPT)
    if raw is not None and (not raw.isdigit() or not 68 <= int(raw) <= 65535):
        raise AllocationError(f"{where}: {MTU_OPT}={raw}: an MTU is an integer from 68 to 65535")


def underlay_addresses(addrs: Iterable[str]) -> list[IPv4Address]:
    out = []
    for addr in addrs:
        try:
            out.append(IPv4Address(addr))
        except ValueError:
            continue
    return out
