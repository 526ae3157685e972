"""The allocator's decision (pure): a snapshot of the store in, the objects to write out.

As in SwarmKit, the reconciler creates tasks NEW, the allocator gives them what the network side needs
and moves them to PENDING, and only then does the scheduler place them:

* a service gets its endpoint: published ingress ports (a port without a number gets one from
  30000-32767) and a VIP on each of its networks (endpoint mode vip), kept across updates;
* a task gets one address on each of its networks (the service's networks, plus `ingress` when the
  service publishes ports in ingress mode);
* the ingress network gets an address for every node (the node's own end of the routing mesh).

A task whose allocation cannot be done stays NEW with the reason in its status (`err`), and the next pass
tries again (an address may have been freed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from orchestrator.allocator.ipam import AllocationError, address_of, pick_address, with_prefix
from orchestrator.model import (
    Endpoint,
    EndpointMode,
    Network,
    NetworkAttachment,
    Node,
    PortConfig,
    PortProtocol,
    PublishMode,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    TaskStatus,
    to_dict,
)

PUBLISHED_RANGE = range(30000, 32768)


@dataclass(slots=True)
class Allocation:
    """What to write: changed services, tasks and networks, by id."""

    services: dict[str, Service] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.services or self.tasks or self.networks)


def ingress_of(networks: Iterable[Network]) -> Network | None:
    return next((n for n in networks if n.spec.ingress), None)


def publishes_ingress(ports: Iterable[PortConfig]) -> bool:
    return any(p.publish_mode is PublishMode.INGRESS for p in ports)


def wanted_networks(spec: ServiceSpec, networks: Mapping[str, Network]) -> list[str]:
    """The ids of the networks a service's tasks join: its own, then ingress when it publishes there."""
    ids = [a.target for a in spec.task.networks if a.target in networks]
    ingress = ingress_of(networks.values())
    if ingress is not None and publishes_ingress(spec.endpoint.ports) and ingress.id not in ids:
        ids.append(ingress.id)
    return ids


def task_network_ids(task: Task, networks: Mapping[str, Network]) -> list[str]:
    """What a task needs addresses on: the networks of the spec it was made from, ingress for ingress ports."""
    ids = [a.target for a in task.spec.networks]
    ingress = ingress_of(networks.values())
    if ingress is not None and publishes_ingress(task.ports) and ingress.id not in ids:
        ids.append(ingress.id)
    return ids


def endpoint_version(spec: ServiceSpec, network_ids: Sequence[str]) -> str:
    data = json.dumps([to_dict(spec.endpoint), list(network_ids)], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def holds_address(task: Task) -> bool:
    """A task keeps its addresses until it has ended and is not wanted any more."""
    return not task.status.state.is_terminal() or task.desired_state <= TaskState.RUNNING


def allocate(*, networks: Sequence[Network], services: Sequence[Service], tasks: Sequence[Task],
             nodes: Sequence[Node], now: float) -> Allocation:
    out = Allocation()
    nets = {n.id: n for n in networks}
    pool = _AddressBook(nets, services, tasks)
    _allocate_node_addresses(nets, nodes, pool, out, now=now)
    endpoints: dict[str, Endpoint] = {}
    reasons: dict[str, str] = {}
    taken_ports = _published_ports(services)
    for service in sorted(services, key=lambda s: (s.created_at, s.id)):
        try:
            endpoints[service.id] = _allocate_service(service, nets, pool, taken_ports, out)
        except AllocationError as exc:
            reasons[service.id] = str(exc)
    by_id = {s.id: s for s in services}
    for task in sorted(tasks, key=lambda t: (t.created_at, t.id)):
        if task.status.state != TaskState.NEW or task.desired_state > TaskState.RUNNING:
            continue
        changed = _allocate_task(task, by_id.get(task.service_id), endpoints, reasons, nets, pool, now=now)
        if changed is not None:
            out.tasks[task.id] = changed
    return out


class _AddressBook:
    """Per network: addresses held (gateway, VIPs, node addresses, live tasks) and recently used ones."""

    def __init__(self, nets: Mapping[str, Network], services: Sequence[Service], tasks: Sequence[Task]) -> None:
        self.subnets = {nid: IPv4Network(n.subnet) for nid, n in nets.items() if n.subnet}
        self.held: dict[str, set[IPv4Address]] = {nid: set() for nid in self.subnets}
        self.recent: dict[str, set[IPv4Address]] = {nid: set() for nid in self.subnets}
        for nid, net in nets.items():
            if nid in self.subnets:
                self.held[nid].add(IPv4Address(net.gateway) if net.gateway else self.subnets[nid].network_address + 1)
                self.held[nid].update(IPv4Address(a) for a in net.node_addresses.values())
        for service in services:
            for vip in service.endpoint.virtual_ips if service.endpoint else ():
                self._hold(vip)
        for task in tasks:
            for attachment in task.networks:
                if holds_address(task):
                    self._hold(attachment)
                elif attachment.network_id in self.recent:
                    self.recent[attachment.network_id].update(address_of(a) for a in attachment.addresses)

    def _hold(self, attachment: NetworkAttachment) -> None:
        if attachment.network_id in self.held:
            self.held[attachment.network_id].update(address_of(a) for a in attachment.addresses)

    def take(self, network: Network) -> str:
        subnet = self.subnets.get(network.id)
        if subnet is None:
            raise AllocationError(f"network {network.spec.name} has no subnet yet")
        addr = pick_address(subnet, held=self.held[network.id], recent=self.recent[network.id])
        if addr is None:
            raise AllocationError(f"no IP address left on network {network.spec.name} ({subnet})")
        self.held[network.id].add(addr)
        return with_prefix(addr, subnet)

    def release(self, network_id: str, cidr: str) -> None:
        self.held.get(network_id, set()).discard(address_of(cidr))


def _allocate_node_addresses(nets: dict[str, Network], nodes: Sequence[Node], pool: _AddressBook, out: Allocation,
                             *, now: float) -> None:
    ingress = ingress_of(nets.values())
    if ingress is None or not ingress.subnet:
        return
    node_ids = {n.id for n in nodes}
    addresses = {nid: a for nid, a in ingress.node_addresses.items() if nid in node_ids}
    for node in sorted(nodes, key=lambda n: (n.created_at, n.id)):
        if node.id not in addresses:
            try:
                addresses[node.id] = str(address_of(pool.take(ingress)))
            except AllocationError:
                break  # tasks on ingress will say the network is full
    if addresses != dict(ingress.node_addresses):
        changed = dataclasses.replace(ingress, node_addresses=addresses, updated_at=now)
        nets[ingress.id] = out.networks[ingress.id] = changed


def _published_ports(services: Sequence[Service]) -> dict[tuple[PortProtocol, int], str]:
    """Ingress ports already given, to which service."""
    taken: dict[tuple[PortProtocol, int], str] = {}
    for service in services:
        for port in service.endpoint.ports if service.endpoint else ():
            if port.publish_mode is PublishMode.INGRESS and port.published_port:
                taken[(port.protocol, port.published_port)] = service.id
    return taken


def _allocate_service(service: Service, nets: Mapping[str, Network], pool: _AddressBook,
                      taken_ports: dict[tuple[PortProtocol, int], str], out: Allocation) -> Endpoint:
    spec = service.spec
    network_ids = wanted_networks(spec, nets)
    version = endpoint_version(spec, network_ids)
    if service.endpoint is not None and service.endpoint.spec_version == version:
        return service.endpoint
    previous = service.endpoint or Endpoint()
    ports = _allocate_ports(service, previous, taken_ports)
    vips = _allocate_vips(service, previous, network_ids, nets, pool)
    _claim_ports(service.id, ports, taken_ports)  # only now: a refused service keeps its stored numbers
    endpoint = Endpoint(ports=ports, virtual_ips=vips, spec_version=version)
    out.services[service.id] = dataclasses.replace(service, endpoint=endpoint)
    return endpoint


def _allocate_ports(service: Service, previous: Endpoint, taken: Mapping[tuple[PortProtocol, int], str]
                    ) -> tuple[PortConfig, ...]:
    """The service's ports with their published numbers; `taken` is left as it is (see _claim_ports).
    Numbers given or kept from before are reserved first, so a port without one never gets them."""
    before = {(p.protocol, p.target_port): p.published_port for p in previous.ports
              if p.publish_mode is PublishMode.INGRESS}
    claimed = {k: owner for k, owner in taken.items() if owner != service.id}
    numbers: list[int] = []
    for port in service.spec.endpoint.ports:
        number = port.published_port or before.get((port.protocol, port.target_port), 0)
        if port.publish_mode is PublishMode.INGRESS and number:
            if claimed.get((port.protocol, number), service.id) != service.id:
                raise AllocationError(f"port {number}/{port.protocol.value} is already published by another service")
            claimed[(port.protocol, number)] = service.id
        numbers.append(number)
    ports = []
    for port, number in zip(service.spec.endpoint.ports, numbers, strict=True):
        if port.publish_mode is not PublishMode.INGRESS:
            ports.append(port)
            continue
        if not number:
            number = next((n for n in PUBLISHED_RANGE if (port.protocol, n) not in claimed), 0)
            if not number:
                raise AllocationError("no port is left in the published port range 30000-32767")
            claimed[(port.protocol, number)] = service.id
        ports.append(dataclasses.replace(port, published_port=number))
    return tuple(ports)


def _claim_ports(service_id: str, ports: Sequence[PortConfig], taken: dict[tuple[PortProtocol, int], str]) -> None:
    for key in [k for k, owner in taken.items() if owner == service_id]:
        del taken[key]
    taken.update({(p.protocol, p.published_port): service_id for p in ports if p.publish_mode is PublishMode.INGRESS})


def _allocate_vips(service: Service, previous: Endpoint, network_ids: Sequence[str], nets: Mapping[str, Network],
                   pool: _AddressBook) -> tuple[NetworkAttachment, ...]:
    kept = {v.network_id: v for v in previous.virtual_ips}
    for gone in set(kept) - set(network_ids):
        for cidr in kept.pop(gone).addresses:
            pool.release(gone, cidr)
    if service.spec.endpoint.mode is not EndpointMode.VIP:
        for network_id, vip in kept.items():
            for cidr in vip.addresses:
                pool.release(network_id, cidr)
        return ()
    vips = []
    for network_id in network_ids:
        vip = kept.get(network_id) or NetworkAttachment(network_id=network_id, addresses=(pool.take(nets[network_id]),))
        vips.append(vip)
    return tuple(vips)


def _allocate_task(task: Task, service: Service | None, endpoints: Mapping[str, Endpoint], reasons: Mapping[str, str],
                   nets: Mapping[str, Network], pool: _AddressBook, *, now: float) -> Task | None:
    """The task with its addresses and PENDING; or still NEW with the reason; None when nothing changes."""
    reason = ""
    if service is not None and service.id in reasons:
        reason = reasons[service.id]
    attachments: list[NetworkAttachment] = []
    if not reason:
        for network_id in task_network_ids(task, nets):
            network = nets.get(network_id)
            if network is None:
                reason = f"network {network_id} not found"
                break
            try:
                attachments.append(NetworkAttachment(network_id=network_id, addresses=(pool.take(network),)))
            except AllocationError as exc:
                reason = str(exc)
                break
    if reason:
        for attachment in attachments:
            for cidr in attachment.addresses:
                pool.release(attachment.network_id, cidr)
        if task.status.err == reason:
            return None
        return dataclasses.replace(task, status=TaskStatus(state=TaskState.NEW, message="allocation failed",
                                                           err=reason, timestamp=now), updated_at=now)
    ports = endpoints[service.id].ports if service is not None and service.id in endpoints else task.ports
    return dataclasses.replace(
        task, networks=tuple(attachments), ports=ports, updated_at=now,
        status=TaskStatus(state=TaskState.PENDING, message="pending task scheduling", timestamp=now))
