"""What one node's agent must program into its engine for the overlays its tasks use (pure).

The dispatcher sends it with the node's assignments; the agent makes the engine hold exactly this:

    {"id", "name", "vni", "subnet", "gateway", "options", "labels", "internal", "attachable", "ingress",
     "node_ip":  this node's own address on the network (ingress) or "",
     "peers":    [{"IP", "MAC", "VTEP"}]   remote task addresses (and, on ingress, the other nodes' own),
     "services": [{"Name", "VIP", "EndpointMode", "Backends", "Aliases", "Ports"}]}

A node takes part in a network when one of its tasks is attached to it, and in `ingress` as soon as any
service publishes a port in ingress mode (the routing mesh answers on every node). A service's backends
are the addresses of its tasks that run and are wanted: a task told to stop, or not healthy yet, is no
backend, so it leaves every node's VIP map before its container is stopped. MACs are derived from the
address (02:42 + the four bytes), as the engine gives them to containers and nodes' bridges.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

from orchestrator.allocator.allocator import holds_address, ingress_of, wanted_networks
from orchestrator.allocator.ipam import address_of
from orchestrator.model import EndpointMode, Network, Node, PublishMode, Service, Task, TaskState

LABEL_NETWORK_ID = "com.docker.swarm.network.id"


def mac_of(address: str) -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(address).packed)


def is_on_node(task: Task) -> bool:
    """A task whose container exists, or is about to, on its node."""
    return task.node_id is not None and task.status.state >= TaskState.ASSIGNED and (
        task.desired_state <= TaskState.RUNNING or not task.status.state.is_terminal())


def is_backend(task: Task) -> bool:
    return task.status.state == TaskState.RUNNING and task.desired_state == TaskState.RUNNING


def node_networks(node_id: str, *, nodes: Mapping[str, Node], networks: Sequence[Network],
                  services: Sequence[Service], tasks: Sequence[Task]) -> list[dict[str, Any]]:
    nets = {n.id: n for n in networks}
    joined = {a.network_id for t in tasks if t.node_id == node_id and is_on_node(t) for a in t.networks}
    ingress = ingress_of(networks)
    mesh = [s for s in services if s.endpoint is not None
            and any(p.publish_mode is PublishMode.INGRESS for p in s.endpoint.ports)]
    if ingress is not None and mesh and node_id in ingress.node_addresses:
        joined.add(ingress.id)
    by_network: dict[str, list[tuple[Task, str]]] = defaultdict(list)
    for task in tasks:
        if not holds_address(task) or task.node_id is None:
            continue
        for attachment in task.networks:
            if attachment.network_id in joined and attachment.addresses:
                by_network[attachment.network_id].append((task, str(address_of(attachment.addresses[0]))))
    views = []
    for network_id in sorted(joined):
        network = nets.get(network_id)
        if network is None or not network.subnet:
            continue
        members = by_network.get(network_id, [])
        views.append({
            "id": network.id, "name": network.spec.name, "vni": network.vni, "subnet": network.subnet,
            "gateway": network.gateway, "options": dict(network.spec.options), "labels": dict(network.spec.labels),
            "internal": network.spec.internal, "attachable": network.spec.attachable, "ingress": network.spec.ingress,
            "node_ip": network.node_addresses.get(node_id, "") if network.spec.ingress else "",
            "peers": _peers(node_id, network, members, nodes),
            "services": _services(network, members, services, nets),
        })
    return views


def _peers(node_id: str, network: Network, members: Iterable[tuple[Task, str]], nodes: Mapping[str, Node]
           ) -> list[dict[str, str]]:
    peers: dict[str, dict[str, str]] = {}
    for task, address in members:
        node = nodes.get(task.node_id or "")
        if task.node_id != node_id and node is not None and node.addr:
            peers[address] = {"IP": address, "MAC": mac_of(address), "VTEP": node.addr}
    if network.spec.ingress:
        for other, address in network.node_addresses.items():
            node = nodes.get(other)
            if other != node_id and node is not None and node.addr:
                peers[address] = {"IP": address, "MAC": mac_of(address), "VTEP": node.addr}
    return [peers[ip] for ip in sorted(peers, key=IPv4Address)]


def _services(network: Network, members: Sequence[tuple[Task, str]], services: Sequence[Service],
              nets: Mapping[str, Network]) -> list[dict[str, Any]]:
    backends: dict[str, list[str]] = defaultdict(list)
    for task, address in members:
        if is_backend(task):
            backends[task.service_id].append(address)
    records = []
    for service in sorted(services, key=lambda s: s.spec.name):
        if service.endpoint is None or network.id not in wanted_networks(service.spec, nets):
            continue
        vip = next((str(address_of(v.addresses[0])) for v in service.endpoint.virtual_ips
                    if v.network_id == network.id and v.addresses), "")
        mode = service.spec.endpoint.mode
        if mode is EndpointMode.VIP and not vip:
            continue  # the allocator has not given it one on this network yet
        aliases = next((list(a.aliases) for a in service.spec.task.networks if a.target == network.id), [])
        ports = [{"Protocol": p.protocol.value, "TargetPort": p.target_port, "PublishedPort": p.published_port}
                 for p in service.endpoint.ports if p.publish_mode is PublishMode.INGRESS and p.published_port]
        records.append({
            "Name": service.spec.name, "VIP": vip if mode is EndpointMode.VIP else "", "EndpointMode": mode.value,
            "Backends": sorted(backends.get(service.id, []), key=IPv4Address), "Aliases": aliases,
            "Ports": ports if network.spec.ingress else [],
        })
    return records


def digest_of(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
