"""The agent's overlay work: make this node's engine hold exactly the networks, peers and service records
the dispatcher sent (manager/netstate.py), through the engine's API. The engine keeps no cluster knowledge:
it is told the VNI, subnet, addresses and peers; the network's cluster id rides on a label.

`plan_networks` is the pure part (engine networks seen + networks wanted -> what to create, replace,
remove); `NetworkProgrammer` applies it and reconciles each network's peers and service records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.client import EngineClient
from node.errors import Conflict, NodeError, NotFound
from node.network.options import LOCAL_OPT, MTU_OPT, NODE_IP_OPT, VNI_OPT

log = logging.getLogger(__name__)
LABEL_NETWORK_ID = "com.docker.swarm.network.id"
_RECORD_KEYS = ("VIP", "EndpointMode", "Backends", "Aliases")


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPlan:
    create: tuple[Mapping[str, Any], ...] = ()  # wanted networks the engine lacks
    replace: tuple[Mapping[str, Any], ...] = ()  # the engine's copy was made with other settings
    remove: tuple[str, ...] = ()  # engine network names no longer wanted
    taken: Mapping[str, str] = field(default_factory=dict)  # cluster network id -> why it can't be made


def engine_settings(engine_network: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(VNI, subnet, this node's address on it, VTEP) as the engine holds them."""
    options = engine_network.get("Options") or {}
    config = ((engine_network.get("IPAM") or {}).get("Config") or [{}])[0]
    return (str(options.get(VNI_OPT, "")), str(config.get("Subnet", "")), str(options.get(NODE_IP_OPT, "")),
            str(options.get(LOCAL_OPT, "")))


def wanted_settings(network: Mapping[str, Any], local_ip: str) -> tuple[str, str, str, str]:
    return str(network["vni"]), str(network["subnet"]), str(network.get("node_ip") or ""), local_ip


def plan_networks(wanted: Sequence[Mapping[str, Any]], engine: Sequence[Mapping[str, Any]], *, local_ip: str
                  ) -> NetworkPlan:
    ours = {str((n.get("Labels") or {}).get(LABEL_NETWORK_ID)): n for n in engine
            if (n.get("Labels") or {}).get(LABEL_NETWORK_ID)}
    names = {str(n.get("Name")): n for n in engine}
    create: list[Mapping[str, Any]] = []
    replace: list[Mapping[str, Any]] = []
    taken: dict[str, str] = {}
    for network in wanted:
        have = ours.get(str(network["id"]))
        if have is None:
            other = names.get(str(network["name"]))
            if other is not None and (other.get("Labels") or {}).get(LABEL_NETWORK_ID):
                replace.append(network)  # our copy of an earlier cluster network of that name (removed, re-made)
            elif other is not None:
                taken[str(network["id"])] = (f"network name {network['name']} is taken on this node by a local "
                                             f"{other.get('Driver', '')} network")
            else:
                create.append(network)
        elif engine_settings(have) != wanted_settings(network, local_ip):
            replace.append(network)
    wanted_ids = {str(n["id"]) for n in wanted}
    replaced = {str(n["name"]) for n in replace}
    remove = tuple(str(n["Name"]) for nid, n in ours.items() if nid not in wanted_ids and n["Name"] not in replaced)
    return NetworkPlan(create=tuple(create), replace=tuple(replace), remove=remove, taken=taken)


def plan_peers(current: Sequence[Mapping[str, str]], wanted: Sequence[Mapping[str, str]]
               ) -> tuple[list[str], list[dict[str, str]]]:
    """(IPs to forget, peers to add or replace) turning `current` into `wanted`."""
    have = {p["IP"]: (p["MAC"].lower(), p["VTEP"]) for p in current}
    want = {p["IP"]: (p["MAC"].lower(), p["VTEP"]) for p in wanted}
    gone = sorted(ip for ip in have if ip not in want)
    added = [dict(p) for p in wanted if have.get(p["IP"]) != want[p["IP"]]]
    return gone, added


def record_of(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a record the engine keeps; aliases as it stores them (lowercased, without the record's own name),
    so a record it lists back compares equal to the one that was put."""
    ports = sorted((str(p.get("Protocol", "tcp")), int(p["TargetPort"]), int(p["PublishedPort"]))
                   for p in entry.get("Ports") or ())
    name = str(entry.get("Name") or "").lower()
    aliases = tuple(a for a in (str(a).lower() for a in entry.get("Aliases") or ()) if a != name)
    return (str(entry.get("VIP") or ""), str(entry.get("EndpointMode") or "vip"),
            tuple(entry.get("Backends") or ()), aliases, tuple(ports))


def plan_services(current: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]
                  ) -> tuple[list[str], list[Mapping[str, Any]]]:
    """(record names to remove, records to put) turning `current` into `wanted`."""
    have = {str(e["Name"]).lower(): record_of(e) for e in current}
    want = {str(e["Name"]).lower(): e for e in wanted}
    gone = sorted(name for name in have if name not in want)
    put = [e for name, e in want.items() if have.get(name) != record_of(e)]
    return gone, put


class NetworkProgrammer:
    """Applies the dispatcher's network view to the local engine (blocking: run in a worker thread)."""

    def __init__(self, *, local_ip: str) -> None:
        self.local_ip = local_ip
        self.failed: dict[str, str] = {}  # cluster network id -> why this node can't join it now

    def sync(self, client: EngineClient, wanted: Sequence[Mapping[str, Any]]) -> None:
        """Networks first (created or remade), then each one's peers and service records. Errors are kept per
        network (`failed`), so a task on a network that could not be made is rejected with the reason."""
        engine = self._engine_networks(client)
        plan = plan_networks(wanted, engine, local_ip=self.local_ip)
        self.failed = dict(plan.taken)
        for network in plan.replace:
            try:
                client.delete(f"/networks/{network['name']}")
            except Conflict:
                log.info("network %s changed but still has containers; kept for now", network["name"])
                continue
            except NotFound:
                pass
            self._create(client, network)
        for network in plan.create:
            self._create(client, network)
        for network in wanted:
            if str(network["id"]) not in self.failed:
                self._program(client, network)

    def remove_unused(self, client: EngineClient, wanted: Sequence[Mapping[str, Any]]) -> None:
        """Engine networks of ours that no task here uses any more (once their containers are gone)."""
        plan = plan_networks(wanted, self._engine_networks(client), local_ip=self.local_ip)
        for name in plan.remove:
            try:
                client.delete(f"/networks/{name}")
                log.info("removed overlay network %s (no task here uses it)", name)
            except (Conflict, NotFound):
                pass  # containers still attached: the next pass removes it
            except NodeError as exc:
                log.warning("removing network %s failed: %s", name, exc)

    def _engine_networks(self, client: EngineClient) -> list[dict[str, Any]]:
        networks: list[dict[str, Any]] = client.get("/networks", params={"filters": '{"driver": ["overlay"]}'})
        return networks

    def _create(self, client: EngineClient, network: Mapping[str, Any]) -> None:
        options = network.get("options") or {}
        mtu = options.get(MTU_OPT)
        try:
            client.create_overlay_network(
                str(network["name"]), vni=int(network["vni"]), subnet=str(network["subnet"]),
                gateway=str(network["gateway"]) or None, local_ip=self.local_ip or None,
                node_ip=str(network.get("node_ip") or "") or None, mtu=int(mtu) if mtu else None,
                attachable=bool(network.get("attachable")), internal=bool(network.get("internal")),
                labels={**(network.get("labels") or {}), LABEL_NETWORK_ID: str(network["id"])})
            log.info("created overlay network %s (VNI %s, %s)", network["name"], network["vni"], network["subnet"])
        except NodeError as exc:
            self.failed[str(network["id"])] = f"network {network['name']}: {exc}"

    def _program(self, client: EngineClient, network: Mapping[str, Any]) -> None:
        name = str(network["name"])
        try:
            gone, added = plan_peers(client.network_peers(name), network.get("peers") or [])
            if gone:
                client.remove_network_peers(name, gone)
            if added:
                client.add_network_peers(name, added)
        except NodeError as exc:
            log.warning("peers of network %s: %s (retrying on the next pass)", name, exc)
        try:
            removed, put = plan_services(client.network_services(name), network.get("services") or [])
            for entry in put:
                client.set_network_service(name, str(entry["Name"]), backends=entry.get("Backends") or [],
                                           vip=str(entry.get("VIP") or "") or None,
                                           endpoint_mode=str(entry.get("EndpointMode") or "vip"),
                                           aliases=entry.get("Aliases") or [], ports=entry.get("Ports") or [])
            for record in removed:
                client.remove_network_service(name, record)
        except NodeError as exc:
            log.warning("service records of network %s: %s (retrying on the next pass)", name, exc)
