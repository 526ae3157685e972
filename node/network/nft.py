"""Packet filtering with nftables, in one table of our own (`inet <nft_table>`), never anyone else's.

The whole table is rendered from the desired state by a pure function (`render_table`) and replaced in
one `nft -f -` transaction (`table …; delete table …; table … {…}`): an update is atomic, a restart
re-renders the same rules (no duplicates, none missing), and removing a network or a container removes
exactly its rules. Conntrack entries survive a replacement, so live connections are not cut.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from node.errors import EngineFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeRules:
    """What the filter needs to know of one bridge network."""

    iface: str
    subnet: str
    internal: bool = False
    masquerade: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PortRule:
    """One published port: traffic to a local address (or `host_ip` only) on `host_port` goes to the container."""

    host_ip: str
    host_port: int
    proto: str
    container_ip: str
    container_port: int
    iface: str
    container_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressRule:
    """A port published on every node for a service (routing mesh): each new connection goes to the next
    of its tasks (round robin), wherever they run; none left, no rule."""

    host_port: int
    proto: str
    target_port: int
    backends: tuple[str, ...]
    service: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlaySnat:
    """Connections this node DNATs into an overlay towards a remote task leave from the node's own overlay
    address (`node_ip`), so the reply comes back through this node and its conntrack; towards a local task
    they keep the client's address."""

    iface: str
    node_ip: str
    remote: tuple[str, ...]


def render_table(table: str, bridges: Sequence[BridgeRules], ports: Sequence[PortRule],
                 ingress: Sequence[IngressRule] = (), overlays: Sequence[OverlaySnat] = ()) -> str:
    """The full `nft -f` script that replaces table `inet <table>` with exactly these rules."""
    chains = [
        _chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;",
               ["fib daddr type local jump ports"]),
        _chain("output", "type nat hook output priority -100; policy accept;",
               ["fib daddr type local jump ports"]),
        _chain("ports", "", [_port_rule(port) for port in ports] + [_ingress_rule(r) for r in ingress if r.backends]),
        _chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;",
               [_snat_rule(o) for o in overlays if o.remote]
               + [rule for bridge in bridges for rule in _nat_rules(bridge)]),
        _chain("forward", "type filter hook forward priority filter; policy accept;", _forward_rules(bridges)),
    ]
    body = "\n".join(chains)
    return f"table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n{body}}}\n"


def _chain(name: str, head: str, rules: Sequence[str]) -> str:
    lines = [f"  chain {name} {{"] + ([f"    {head}"] if head else []) + [f"    {rule}" for rule in rules]
    return "\n".join(lines) + "\n  }\n"


def _port_rule(port: PortRule) -> str:
    match = "" if port.host_ip in ("", "0.0.0.0") else f"ip daddr {port.host_ip} "
    return (f"{match}{port.proto} dport {port.host_port} dnat ip to {port.container_ip}:{port.container_port} "
            f'comment "{port.container_id[:12]}"')


def _ingress_rule(rule: IngressRule) -> str:
    mapping = ", ".join(f"{i} : {addr} . {rule.target_port}" for i, addr in enumerate(rule.backends))
    return (f"{rule.proto} dport {rule.host_port} dnat ip to numgen inc mod {len(rule.backends)} map {{ {mapping} }} "
            f'comment "ingress {rule.service[:80]}"')


def _snat_rule(overlay: OverlaySnat) -> str:
    return (f"oifname {_q(overlay.iface)} ct status dnat ip daddr {{ {', '.join(overlay.remote)} }} "
            f"snat ip to {overlay.node_ip}")


def _nat_rules(bridge: BridgeRules) -> list[str]:
    iface = _q(bridge.iface)
    rules = [f"oifname {iface} ip saddr 127.0.0.0/8 masquerade",  # host loopback -> published port
             f"oifname {iface} ip saddr {bridge.subnet} ct status dnat masquerade"]  # hairpin
    if bridge.masquerade and not bridge.internal:
        rules.append(f"ip saddr {bridge.subnet} oifname != {iface} masquerade")
    return rules


def _forward_rules(bridges: Sequence[BridgeRules]) -> list[str]:
    rules = ["ct state established,related accept"]
    rules += [f"iifname {_q(b.iface)} oifname {_q(b.iface)} accept" for b in bridges]
    for bridge in bridges:
        if bridge.internal:
            rules += [f"iifname {_q(bridge.iface)} drop", f"oifname {_q(bridge.iface)} drop"]
    rules.append("ct status dnat accept")
    if len(bridges) > 1:
        names = ", ".join(_q(b.iface) for b in bridges)
        rules.append(f"iifname {{ {names} }} oifname {{ {names} }} drop")
    return rules


def _q(name: str) -> str:
    return f'"{name}"'


def apply(script: str) -> None:
    """Run an nft script as one transaction."""
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EngineFailure(f"nft: {result.stderr.strip().splitlines()[0] if result.stderr.strip() else 'failed'}")


def delete_table(table: str) -> None:
    """Remove our table (missing is fine)."""
    apply(f"table inet {table}\ndelete table inet {table}\n")


def table_exists(table: str) -> bool:
    result = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, check=False)
    return result.returncode == 0


def list_table(table: str) -> str:
    result = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else ""


def foreign_forward_drops(table: str) -> list[str]:
    """Forward-hook chains with policy drop in other tables (a Docker host's iptables FORWARD, say)."""
    result = subprocess.run(["nft", "-j", "list", "chains"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return []
    found = []
    for item in json.loads(result.stdout).get("nftables", []):
        chain = item.get("chain")
        if chain and chain.get("hook") == "forward" and chain.get("policy") == "drop" and chain["table"] != table:
            found.append(f"{chain['family']} {chain['table']} {chain['name']}")
    return found
