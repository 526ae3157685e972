"""Service records of overlay networks (names, VIPs, task addresses) and VIP load balancing with nftables.

The cluster's allocator gives a service a VIP on each of its networks and the agent tells the engine which
task addresses are healthy (`PUT /networks/{id}/services/{name}`). The engine then

* answers the service's name in the embedded DNS of every container on that network: the VIP
  (`endpoint_mode: vip`) or the task addresses (`dnsrr`); `tasks.<name>` always gives the task addresses;
* balances the VIP over the task addresses inside each such container's own network namespace (this
  kernel has no IPVS): a table `inet <table>` there with a nat output chain holding, per VIP,
  `ip daddr VIP dnat ip to numgen inc mod N map { 0 : T0, 1 : T1, ... }` (round robin per new
  connection); a VIP with no task left is rejected (TCP reset, ICMP unreachable) at once, not timed out.

Why in the client's namespace and not on the node's bridge: the DNAT happens before the packet leaves the
client, so the backend sees the client's own address and replies straight to it (the reply is un-NATed by
the client's conntrack), whichever node the backend runs on. DNAT on the bridge would need SNAT as well
(replies would otherwise bypass the translating node), which hides the client's address.

A change of backends re-renders each affected sandbox's table and replaces it in one `nft -f` transaction
(`table; delete table; table {...}`): a connection never sees a half-updated map, and existing connections
keep their conntrack entry (a task that leaves the map gets no new connections). Sandboxes are updated one
after another, each atomically.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from node.errors import InvalidArgument
from node.network import nft
from node.network.ipam import parse_address
from node.network.netns import run_in_namespace

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class EndpointMode(enum.Enum):
    VIP = "vip"
    DNSRR = "dnsrr"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressPort:
    """A port the service publishes on every node (routing mesh): node:published -> a task's target port."""

    protocol: str
    target_port: int
    published_port: int

    def to_docker(self) -> dict[str, Any]:
        return {"Protocol": self.protocol, "TargetPort": self.target_port, "PublishedPort": self.published_port,
                "PublishMode": "ingress"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntry:
    """One service on one network: what its name resolves to and where its VIP leads."""

    name: str
    endpoint_mode: EndpointMode = EndpointMode.VIP
    vip: str | None = None
    backends: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    ports: tuple[IngressPort, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def to_docker(self) -> dict[str, Any]:
        return {"Name": self.name, "EndpointMode": self.endpoint_mode.value, "VIP": self.vip or "",
                "Backends": list(self.backends), "Aliases": list(self.aliases),
                "Ports": [p.to_docker() for p in self.ports]}

    def to_json(self) -> dict[str, Any]:
        return self.to_docker()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceEntry:
        return cls(name=data["Name"], endpoint_mode=EndpointMode(data.get("EndpointMode", "vip")),
                   vip=data.get("VIP") or None, backends=tuple(data.get("Backends", ())),
                   aliases=tuple(data.get("Aliases", ())),
                   ports=tuple(IngressPort(protocol=p["Protocol"], target_port=p["TargetPort"],
                                           published_port=p["PublishedPort"]) for p in data.get("Ports", ())))


def parse_service(name: str, body: Mapping[str, Any], subnet: IPv4Network) -> ServiceEntry:
    """`PUT /networks/{id}/services/{name}` body {"VIP", "EndpointMode", "Backends", "Aliases", "Ports"} ->
    entry. Ports are Docker's EndpointSpec.Ports in ingress mode: [{"Protocol", "TargetPort", "PublishedPort"}]."""
    name = name.lower()
    if not name or not set(name) <= _NAME_CHARS or name.startswith("tasks."):
        raise InvalidArgument(f"invalid service name {name!r}: use letters, digits, '-', '_' and '.'")
    raw_mode = str(body.get("EndpointMode") or "vip").lower()
    try:
        mode = EndpointMode(raw_mode)
    except ValueError as exc:
        raise InvalidArgument(f"EndpointMode {raw_mode!r}: use vip or dnsrr") from exc
    vip = None
    if body.get("VIP"):
        vip_addr = parse_address(str(body["VIP"]).split("/")[0], what="VIP")
        if vip_addr not in subnet:
            raise InvalidArgument(f"VIP {vip_addr} is not in the network's subnet {subnet}")
        vip = str(vip_addr)
    if mode is EndpointMode.VIP and vip is None:
        raise InvalidArgument(f"service {name}: endpoint mode vip needs a VIP")
    if mode is EndpointMode.DNSRR and vip is not None:
        raise InvalidArgument(f"service {name}: endpoint mode dnsrr has no VIP")
    raw_backends = body.get("Backends") or []
    if not isinstance(raw_backends, list):
        raise InvalidArgument("Backends must be a list of addresses")
    backends = []
    for item in raw_backends:
        addr = parse_address(str(item).split("/")[0], what="backend address")
        if addr not in subnet:
            raise InvalidArgument(f"backend {addr} is not in the network's subnet {subnet}")
        if str(addr) not in backends:
            backends.append(str(addr))
    aliases = tuple(str(a).lower() for a in body.get("Aliases") or () if str(a).lower() != name)
    return ServiceEntry(name=name, endpoint_mode=mode, vip=vip, backends=tuple(backends), aliases=aliases,
                        ports=parse_ingress_ports(body.get("Ports") or []))


def parse_ingress_ports(raw: object) -> tuple[IngressPort, ...]:
    if not isinstance(raw, list):
        raise InvalidArgument('Ports must be a list of {"Protocol", "TargetPort", "PublishedPort"}')
    out: dict[tuple[str, int], IngressPort] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidArgument(f"Ports[{index}]: expected an object")
        if str(item.get("PublishMode") or "ingress") != "ingress":
            raise InvalidArgument(f"Ports[{index}]: publish mode {item.get('PublishMode')} is the task container's "
                                  "own port binding, not a service record's (only ingress here)")
        proto = str(item.get("Protocol") or "tcp").lower()
        if proto not in ("tcp", "udp"):
            raise InvalidArgument(f"Ports[{index}]: protocol {proto!r}: use tcp or udp")
        target, published = _port(item.get("TargetPort"), index), _port(item.get("PublishedPort"), index)
        if (proto, published) in out:
            raise InvalidArgument(f"Ports[{index}]: {published}/{proto} is published twice")
        out[(proto, published)] = IngressPort(protocol=proto, target_port=target, published_port=published)
    return tuple(out.values())


def _port(value: object, index: int) -> int:
    text = str(value or "")
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument(f"Ports[{index}]: port {value!r} is not from 1 to 65535")
    return int(text)


def resolve(entries: Iterable[ServiceEntry], qname: str, network_name: str) -> list[IPv4Address] | None:
    """What the embedded DNS answers for `qname` from these services (None: no service of that name).
    `NAME` and `NAME.<network>` give the VIP (vip) or the tasks (dnsrr); `tasks.NAME` gives the tasks."""
    name = qname.rstrip(".").lower()
    suffix = f".{network_name.lower()}"
    if name.endswith(suffix):
        name = name[: -len(suffix)]
    tasks = name.startswith("tasks.")
    name = name.removeprefix("tasks.")
    for entry in entries:
        if name in entry.names():
            if tasks or entry.endpoint_mode is EndpointMode.DNSRR or entry.vip is None:
                return [IPv4Address(b) for b in entry.backends]
            return [IPv4Address(entry.vip)]
    return None


def render_lb_table(table: str, entries: Sequence[ServiceEntry]) -> str:
    """The `nft -f` script replacing table `inet <table>` of one sandbox with these VIPs' rules (pure).
    DNAT sits in a nat output chain; a VIP without tasks is rejected in a filter output chain (reject has
    no effect from a nat chain)."""
    dnat, reject = [], []
    for entry in sorted(entries, key=lambda e: (e.vip or "", e.name)):
        if entry.vip is None or entry.endpoint_mode is not EndpointMode.VIP:
            continue
        comment = f'comment "{entry.name[:100]}"'
        if entry.backends:
            mapping = ", ".join(f"{i} : {addr}" for i, addr in enumerate(entry.backends))
            dnat.append(f"ip daddr {entry.vip} dnat ip to numgen inc mod {len(entry.backends)} map "
                        f"{{ {mapping} }} {comment}")
        else:
            reject += [f"ip daddr {entry.vip} meta l4proto tcp reject with tcp reset {comment}",
                       f"ip daddr {entry.vip} reject {comment}"]
    body = ["  chain output {", "    type nat hook output priority -100; policy accept;",
            *(f"    {rule}" for rule in dnat), "  }",
            "  chain refuse {", "    type filter hook output priority 0; policy accept;",
            *(f"    {rule}" for rule in reject), "  }"]
    return f"table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n" + "\n".join(body) + "\n}\n"


def apply_lb(sandbox: Path, table: str, entries: Sequence[ServiceEntry]) -> None:
    """Replace the sandbox's balancing table in one transaction (or remove it when no VIP is left)."""
    if any(e.vip and e.endpoint_mode is EndpointMode.VIP for e in entries):
        script = render_lb_table(table, entries)
    else:
        script = f"table inet {table}\ndelete table inet {table}\n"
    run_in_namespace(sandbox, lambda: nft.apply(script))


def list_lb(sandbox: Path, table: str) -> str:
    return run_in_namespace(sandbox, lambda: nft.list_table(table))
