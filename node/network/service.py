"""NetworkService: networks, container sandboxes, endpoints, published ports, embedded DNS, nftables.

State lives under `<data-root>/network/` (one JSON file per network and per container, written atomically);
sandboxes under `<exec-root>/netns/<container_id>`. Methods are synchronous and thread-safe (one lock):
the API calls them from its thread pool, the container service from wherever it runs. DNS listeners are
served on the daemon's event loop, captured by `start()`.

How the container service uses it (in this order):
    path = networks.create_sandbox(cid)                # unless --network host; OCI netns path = `path`
    networks.connect(cid, "bridge", name=..., hostname=...)   # per network; returns EndpointSettings
    networks.publish(cid, [{"HostIp": "", "HostPort": "8080", "ContainerPort": 80, "Protocol": "tcp"}])
    write networks.resolv_conf(cid) / networks.hosts(cid) into the container's files
    ... on stop or removal: networks.release(cid)
    ... at daemon start, after adopting containers: networks.restore([(cid, pid_or_None), ...])
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import ipaddress
import logging
import random
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from node.config import DaemonConfig
from node.errors import Conflict, InvalidArgument, NodeError, NotFound
from node.events import EventBus
from node.fsutil import read_json, write_json_atomic
from node.network import dns, links, nft, overlay, ports, vip
from node.network.ipam import IpamConfig, allocate_address, mac_for, parse_pools, plan_ipam
from node.network.model import DEFAULT_BRIDGE, ContainerNet, Endpoint, Network, Published
from node.network.netns import (
    create_namespace,
    is_namespace,
    remove_namespace,
    run_in_namespace,
    set_interface_sysctl,
    write_sysctl,
)
from node.network.options import MTU_OPT, NODE_IP_OPT
from node.network.overlay import Peer
from node.network.vip import ServiceEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

HOST_LOCK = Path("/run/pynode-network.lock")  # host-wide: daemons on one host pick subnets in turn
BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
MASQ_OPT = "com.docker.network.bridge.enable_ip_masquerade"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_DRIVERS = ("bridge", "macvlan", "overlay")
_BRIDGED = ("bridge", "overlay")  # drivers whose containers sit on a Linux bridge of ours through a veth


def off_loop(method: Callable[..., T]) -> Callable[..., T]:
    """Run a kernel-touching method in a helper thread when called from a thread with a running asyncio
    loop: pyroute2's synchronous IPRoute drives its own loop and refuses to start inside a running one.
    The caller still gets the result (or the error) synchronously."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(*args, **kwargs)
        return run_in_namespace(None, lambda: method(*args, **kwargs))

    return wrapper


class NetworkService:
    def __init__(self, config: DaemonConfig, *, events: EventBus | None = None) -> None:
        self.config = config
        self.events = events
        self.state_dir = config.data_root / "network"
        self.netns_dir = config.exec_root / "netns"
        self.table = config.nft_table
        self.default_iface = "pynode0" if self.table == "pynode" else f"{self.table[:14]}0"
        self._lock = threading.RLock()
        self._networks: dict[str, Network] = {}
        self._containers: dict[str, ContainerNet] = {}
        self._port_socks: dict[str, list[socket.socket]] = {}
        self._dns_open: set[str] = set()
        # overlay networks: peers (remote endpoints) and service records, by network id
        self._peers: dict[str, tuple[Peer, ...]] = {}
        self._services: dict[str, dict[str, ServiceEntry]] = {}
        self._ingress_socks: dict[tuple[str, int], socket.socket] = {}  # (proto, port) held for the routing mesh
        self._applied_rules: str | None = None  # the table script last applied: an unchanged one is not re-run
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dns = dns.DnsServer(dns.Resolver(self.lookup, self.upstreams))

    # --- daemon lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load state, ensure the predefined networks and every bridge, rules, DNS listeners, port holds."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._start_sync)

    def _start_sync(self) -> None:
        with self._lock:
            self._load()
            try:
                write_sysctl(None, "net.ipv4.ip_forward", "1")
                self._ensure_predefined()
                for network in list(self._networks.values()):
                    if network.driver == "bridge" and network.name != DEFAULT_BRIDGE:
                        self._ensure_bridge(network)
                    elif network.driver == "overlay":
                        self._save_network(self._ensure_overlay(network))
                self._sync_rules()
            except Exception:
                self._teardown_if_unused()  # a daemon that fails to start leaves no bridge behind
                raise
            for entries in self._services.values():
                for entry in entries.values():
                    try:
                        self._hold_ingress(entry, None)
                    except NodeError as exc:
                        log.warning("service %s: cannot hold its published ports again: %s", entry.name, exc)
            for record in list(self._containers.values()):
                self._revive(record)
            drops = nft.foreign_forward_drops(self.table)
            if drops:
                log.warning("forward chains with policy drop in other tables (%s) will block container traffic "
                            "that they do not accept themselves (a Docker host?); add accepts for our bridges "
                            "there", ", ".join(drops))

    async def stop(self) -> None:
        """Close listeners and port holds. Kernel objects stay while any container has networking (they
        outlive the daemon); with none left, our bridges and nft table go too (re-made at start)."""
        await self.dns.close_all()
        await asyncio.to_thread(self._stop_sync)

    def _stop_sync(self) -> None:
        with self._lock:
            self._dns_open.clear()
            for socks in self._port_socks.values():
                for sock in socks:
                    sock.close()
            self._port_socks.clear()
            for sock in self._ingress_socks.values():
                sock.close()
            self._ingress_socks.clear()
            self._teardown_if_unused()

    def _teardown_if_unused(self) -> None:
        """With no container networking left, remove our bridges and nft table (start() re-makes them)."""
        if self._containers:
            return
        for network in self._networks.values():
            if network.driver == "bridge" and network.iface:
                links.delete_link(network.iface)
            elif network.driver == "overlay" and network.iface:
                overlay.delete_overlay(bridge=network.iface, vxlan=overlay.vxlan_name(network.id))
        nft.delete_table(self.table)
        self._applied_rules = None

    @off_loop
    def restore(self, running: Sequence[tuple[str, int | None]]) -> None:
        """Reconcile with the containers the engine adopted: keep those with a pid, release the rest."""
        with self._lock:
            alive = {cid for cid, pid in running if pid}
            for cid in list(self._containers):
                if cid not in alive:
                    self.release(cid)
            for cid in alive:
                if cid in self._containers:
                    self._revive(self._containers[cid])
            self._sync_rules()

    def info_fields(self) -> dict[str, Any]:
        return {}

    # --- networks --------------------------------------------------------------------------------
    @off_loop
    def create_network(
        self, name: str, *, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
        ip_range: str | None = None, internal: bool = False, attachable: bool = False,
        options: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
    ) -> Network:
        """`network create`: validate, allocate, make the bridge (or check the macvlan parent), add rules."""
        options = dict(options or {})
        self._check_new_name(name)
        driver = _check_driver(driver)
        with self._lock, _host_lock():
            if any(n.name == name for n in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            network = Network(id=secrets.token_hex(32), name=name, driver=driver, created=_now(),
                              internal=internal, attachable=attachable, labels=dict(labels or {}), options=options)
            network = self._plan(network, subnet=subnet, gateway=gateway, ip_range=ip_range)
            if driver == "bridge":
                self._ensure_bridge(network)
            elif driver == "overlay":
                network = self._ensure_overlay(network)
            try:
                self._save_network(network)
                self._sync_rules()
            except Exception:
                self._drop_network(network)
                raise
            self._emit("create", network)
            return network

    def _check_new_name(self, name: str) -> None:
        if not _NAME.match(name):
            raise InvalidArgument(f"invalid network name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")

    def _plan(self, network: Network, *, subnet: str | None, gateway: str | None, ip_range: str | None) -> Network:
        in_use = [n.ipam.subnet for n in self._networks.values() if n.ipam is not None]
        if network.driver == "macvlan":
            parent = network.options.get("parent")
            if not parent:
                raise InvalidArgument("macvlan needs a parent interface: -o parent=IFACE")
            if not links.link_exists(parent):
                raise InvalidArgument(f"parent interface {parent} does not exist")
            if network.options.get("macvlan_mode", "bridge") != "bridge":
                raise InvalidArgument("macvlan_mode: only bridge mode is supported")
            ipam = plan_ipam(subnet=subnet, gateway=gateway, ip_range=ip_range, pools=self._pools(),
                             networks_in_use=in_use, host_routes=self._host_routes() if subnet is None else ())
            return replace(network, ipam=ipam, parent=parent)
        if network.driver == "overlay":
            if subnet is None:
                raise InvalidArgument("an overlay network needs its subnet (decided by the cluster's allocator)")
            ipam = plan_ipam(subnet=subnet, gateway=gateway, ip_range=ip_range, pools=self._pools(),
                             networks_in_use=in_use, host_routes=self._host_routes())
            overlay.parse_settings(network.options, ipam.subnet, ipam.gateway)
            return replace(network, ipam=ipam, iface=overlay.bridge_name(network.id))
        iface = network.options.get(BRIDGE_NAME_OPT) or f"br-{network.id[:12]}"
        if len(iface) > 15 or not re.match(r"^[a-zA-Z0-9_.-]+$", iface):
            raise InvalidArgument(f"invalid bridge name {iface!r}: at most 15 letters, digits, '_', '.', '-'")
        if any(n.iface == iface for n in self._networks.values()) or links.link_exists(iface):
            raise Conflict(f"bridge name {iface} is already in use")
        ipam = plan_ipam(subnet=subnet, gateway=gateway, ip_range=ip_range, pools=self._pools(),
                         networks_in_use=in_use, host_routes=self._host_routes())
        return replace(network, ipam=ipam, iface=iface)

    @off_loop
    def remove_network(self, id_or_name: str) -> None:
        with self._lock:
            network = self.find(id_or_name)
            if network.is_predefined:
                raise InvalidArgument(f"{network.name} is a pre-defined network and cannot be removed")
            users = self._containers_on(network.id)
            if users:
                raise Conflict(f"error while removing network: network {network.name} id {network.id} has active "
                               f"endpoints ({', '.join(r.name or r.container_id[:12] for r in users)})")
            self._drop_network(network)
            self._sync_rules()
            self._emit("destroy", network)

    @off_loop
    def prune(self, *, labels: Sequence[str] = ()) -> list[str]:
        """Remove user-defined networks that no container uses (and that carry every given label). Overlay
        networks are the cluster agent's to remove (as Docker's prune leaves swarm-scoped networks alone)."""
        removed = []
        with self._lock:
            for network in list(self._networks.values()):
                if network.is_predefined or network.driver == "overlay" or self._containers_on(network.id):
                    continue
                if not all(_label_matches(network.labels, want) for want in labels):
                    continue
                self._drop_network(network)
                self._emit("destroy", network)
                removed.append(network.name)
            self._sync_rules()
        return removed

    def find(self, id_or_name: str) -> Network:
        network = self._find_or_none(id_or_name)
        if network is None:
            raise NotFound(f"network {id_or_name} not found")
        return network

    def _find_or_none(self, ref: str) -> Network | None:
        if ref in self._networks:
            return self._networks[ref]
        by_name = [n for n in self._networks.values() if n.name == ref]
        if by_name:
            return by_name[0]
        by_prefix = [n for n in self._networks.values() if n.id.startswith(ref)]
        if len(by_prefix) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(by_prefix)} matches)")
        return by_prefix[0] if by_prefix else None

    def list_networks(self) -> list[Network]:
        with self._lock:
            return sorted(self._networks.values(), key=lambda n: (n.created, n.name))

    def inspect(self, network: Network) -> dict[str, Any]:
        """Docker's network object."""
        containers = {}
        with self._lock:
            for record in self._containers_on(network.id):
                ep = record.endpoint_on(network.id)
                assert ep is not None
                containers[record.container_id] = {
                    "Name": record.name, "EndpointID": ep.id, "MacAddress": ep.mac,
                    "IPv4Address": f"{ep.address}/{ep.prefixlen}" if ep.address else "", "IPv6Address": ""}
        options = dict(network.options)
        if network.driver == "bridge" and network.iface:
            options.setdefault(BRIDGE_NAME_OPT, network.iface)
        extra: dict[str, Any] = {}
        if network.driver == "overlay":
            extra = {"Peers": [p.to_docker() for p in self._peers.get(network.id, ())],
                     "Services": {e.name: e.to_docker() for e in self._services.get(network.id, {}).values()}}
        return {
            "Name": network.name, "Id": network.id, "Created": network.created,
            "Scope": "swarm" if network.driver == "overlay" else "local",
            "Driver": network.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [network.ipam.to_docker()] if network.ipam is not None else []},
            "Internal": network.internal, "Attachable": network.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": options, "Labels": dict(network.labels),
        } | extra

    # --- sandboxes -------------------------------------------------------------------------------
    @off_loop
    def create_sandbox(self, container_id: str) -> Path:
        """A fresh network namespace for a container, pinned at `<exec-root>/netns/<container_id>`, loopback
        up. Point the OCI config's network namespace at the returned path. Idempotent."""
        with self._lock:
            path = self.netns_dir / container_id
            create_namespace(path)
            record = self._containers.get(container_id) or ContainerNet(container_id=container_id)
            self._save_container(replace(record, sandbox=str(path)))
            return path

    def sandbox_path(self, container_id: str) -> Path | None:
        record = self._containers.get(container_id)
        return Path(record.sandbox) if record and record.sandbox else None

    @off_loop
    def remove_sandbox(self, container_id: str) -> None:
        """Unplug the container's endpoints (addresses freed), unmount and unlink its namespace. Published
        ports stay recorded (without a target) until `unpublish` or `release`. Idempotent."""
        with self._lock:
            self._close_dns(container_id)
            record = self._containers.get(container_id)
            if record is not None:
                sandbox = Path(record.sandbox) if record.sandbox else None
                for endpoint in record.endpoints:
                    with contextlib.suppress(NodeError):
                        self._unplug(sandbox, endpoint)
            remove_namespace(self.netns_dir / container_id)
            if record is not None:
                self._save_container(replace(record, sandbox=None, endpoints=()))
                self._sync_rules()

    # --- endpoints -------------------------------------------------------------------------------
    @off_loop
    def connect(
        self, container_id: str, network_ref: str, *, name: str = "", aliases: Iterable[str] = (),
        ipv4_address: str | None = None, hostname: str | None = None, mac_address: str | None = None,
    ) -> dict[str, Any]:
        """Attach the container to a network; returns Docker's EndpointSettings. On a bridge or macvlan
        network the container needs a sandbox (made here if missing); `host` and `none` only record it."""
        with self._lock:
            network = self.find(network_ref)
            record = self._containers.get(container_id) or ContainerNet(container_id=container_id)
            record = replace(record, name=name.lstrip("/") or record.name, hostname=hostname or record.hostname)
            self._check_connect(record, network, aliases=tuple(aliases), ipv4_address=ipv4_address)
            if network.driver in ("host", "null"):
                endpoint = Endpoint(id=secrets.token_hex(32), network_id=network.id)
            else:
                made_sandbox = not record.sandbox or not is_namespace(Path(record.sandbox))
                if made_sandbox:
                    record = replace(record, sandbox=str(self.create_sandbox(container_id)))
                try:
                    endpoint = self._plug(record, network, aliases=tuple(aliases), ipv4_address=ipv4_address,
                                          mac_address=mac_address)
                except Exception:
                    if made_sandbox and not record.endpoints:
                        self.release(container_id)
                    raise
            record = replace(record, endpoints=(*record.endpoints, endpoint))
            self._save_container(record)
            self._sync_rules()
            self._sync_lb(record)
            self._ensure_dns(record)
            self._emit("connect", network, container_id)
            return self.endpoint_settings(record, endpoint)

    def _check_connect(self, record: ContainerNet, network: Network, *, aliases: tuple[str, ...],
                       ipv4_address: str | None) -> None:
        if record.endpoint_on(network.id) is not None:
            raise Conflict(f"endpoint with name {record.name or record.container_id[:12]} already exists in "
                           f"network {network.name}")
        kinds = {self._networks[ep.network_id].driver for ep in record.endpoints if ep.network_id in self._networks}
        if network.driver in ("host", "null") and record.endpoints or kinds & {"host", "null"}:
            raise Conflict(f"container cannot be connected to network {network.name}: it is attached to "
                           f"{'host' if 'host' in kinds or network.driver == 'host' else 'none'} networking")
        if network.name == DEFAULT_BRIDGE and aliases:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if network.name == DEFAULT_BRIDGE and ipv4_address:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")

    def _plug(self, record: ContainerNet, network: Network, *, aliases: tuple[str, ...],
              ipv4_address: str | None, mac_address: str | None) -> Endpoint:
        """Make the interface inside the sandbox and address it; nothing is left behind on failure."""
        assert network.ipam is not None and record.sandbox is not None
        taken = [IPv4Address(ep.address) for r in self._containers.values() for ep in r.endpoints
                 if ep.network_id == network.id and ep.address]
        if network.driver == "overlay":  # remote tasks, this node's own address and the VIPs are taken too
            taken += [IPv4Address(p.ip) for p in self._peers.get(network.id, ())]
            taken += [IPv4Address(e.vip) for e in self._services.get(network.id, {}).values() if e.vip]
            if network.options.get(NODE_IP_OPT):
                taken.append(IPv4Address(network.options[NODE_IP_OPT]))
        address = allocate_address(network.ipam, taken, ipv4_address)
        used = {ep.ifname for ep in record.endpoints}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        endpoint = Endpoint(
            id=secrets.token_hex(32), network_id=network.id, aliases=aliases, address=str(address),
            prefixlen=network.ipam.subnet.prefixlen, mac=mac_address or mac_for(address),
            gateway=None if network.internal else str(network.ipam.gateway), ifname=ifname)
        sandbox = Path(record.sandbox)
        try:
            if network.driver in _BRIDGED:
                endpoint = replace(endpoint, host_ifname=f"veth{endpoint.id[:11]}")
                assert network.iface is not None and endpoint.host_ifname is not None
                links.add_veth(bridge=network.iface, host_ifname=endpoint.host_ifname, netns=sandbox, ifname=ifname)
                if network.driver == "overlay":
                    mtu = int(network.options[MTU_OPT])
                    overlay.set_mtu(endpoint.host_ifname, mtu)
                    overlay.set_mtu(ifname, mtu, sandbox)
            else:
                assert network.parent is not None
                links.add_macvlan(parent=network.parent, netns=sandbox, ifname=ifname, mac=endpoint.mac)
            links.configure_inside(netns=sandbox, ifname=ifname, address=address, prefixlen=endpoint.prefixlen,
                                   mac=endpoint.mac, gateway=IPv4Address(endpoint.gateway) if endpoint.gateway
                                   else None)
        except Exception:
            self._unplug(sandbox, endpoint)
            raise
        return endpoint

    def _unplug(self, sandbox: Path | None, endpoint: Endpoint) -> None:
        if endpoint.host_ifname:
            links.delete_link(endpoint.host_ifname)
        elif endpoint.ifname and sandbox is not None and is_namespace(sandbox):
            links.delete_link(endpoint.ifname, sandbox)

    @off_loop
    def disconnect(self, container_id: str, network_ref: str, *, force: bool = False) -> None:
        """Detach the container from one network (its interface goes; ports to it go if it was the last)."""
        with self._lock:
            network = self.find(network_ref)
            record = self._containers.get(container_id)
            endpoint = record.endpoint_on(network.id) if record else None
            if record is None or endpoint is None:
                if force:
                    return
                raise NotFound(f"container {container_id[:12]} is not connected to network {network.name}")
            sandbox = Path(record.sandbox) if record.sandbox else None
            self._unplug(sandbox, endpoint)
            rest = tuple(ep for ep in record.endpoints if ep.id != endpoint.id)
            record = replace(record, endpoints=rest)
            if endpoint.gateway and sandbox is not None:
                self._reroute(sandbox, rest)
            self._save_container(record)
            self._sync_rules()
            self._sync_lb(record, was_on_overlay=network.driver == "overlay")
            if not any(self._networks[ep.network_id].has_dns for ep in rest if ep.network_id in self._networks):
                self._close_dns(container_id)
            self._emit("disconnect", network, container_id)

    def _reroute(self, sandbox: Path, endpoints: Sequence[Endpoint]) -> None:
        for ep in endpoints:
            if ep.gateway and ep.ifname:
                links.ensure_default_route(netns=sandbox, ifname=ep.ifname, gateway=IPv4Address(ep.gateway))
                return

    def endpoint_settings(self, record: ContainerNet, endpoint: Endpoint) -> dict[str, Any]:
        """Docker's EndpointSettings for one endpoint."""
        network = self._networks.get(endpoint.network_id)
        dns_names = self._dns_names(record, endpoint) if network is not None and network.has_dns else None
        return {
            "IPAMConfig": None, "Links": None, "Aliases": list(endpoint.aliases) or None,
            "MacAddress": endpoint.mac, "NetworkID": endpoint.network_id, "EndpointID": endpoint.id,
            "Gateway": endpoint.gateway or "", "IPAddress": endpoint.address or "",
            "IPPrefixLen": endpoint.prefixlen, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": dns_names,
        }

    def networks_of(self, container_id: str) -> dict[str, dict[str, Any]]:
        """NetworkSettings.Networks for container inspect: network name -> EndpointSettings."""
        with self._lock:
            record = self._containers.get(container_id)
            if record is None:
                return {}
            return {self._networks[ep.network_id].name: self.endpoint_settings(record, ep)
                    for ep in record.endpoints if ep.network_id in self._networks}

    # --- published ports -------------------------------------------------------------------------
    @off_loop
    def publish(self, container_id: str, bindings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Publish ports ({HostIp, HostPort, ContainerPort, Protocol}; HostPort "" or 0 = random) to the
        container's address on its first bridge network; returns the actual bindings. A host port in use
        (by one of ours or any process) is a Conflict naming it, and nothing of this call stays held."""
        with self._lock:
            record = self._containers.get(container_id)
            target = self._port_target(record) if record else None
            if record is None or target is None:
                return []
            held: list[socket.socket] = []
            published = []
            try:
                for raw in bindings:
                    binding = ports.normalize(dict(raw))
                    sock, port = ports.reserve(binding)
                    held.append(sock)
                    published.append(Published(host_ip=binding.host_ip, host_port=port,
                                               container_port=binding.container_port, proto=binding.proto))
                record = replace(record, ports=(*record.ports, *published))
                self._save_container(record)
                self._sync_rules()
            except BaseException:
                for sock in held:
                    sock.close()
                raise
            self._port_socks.setdefault(container_id, []).extend(held)
            return [p.to_docker() for p in published]

    @off_loop
    def unpublish(self, container_id: str) -> None:
        with self._lock:
            for sock in self._port_socks.pop(container_id, []):
                sock.close()
            record = self._containers.get(container_id)
            if record is not None and record.ports:
                self._save_container(replace(record, ports=()))
                self._sync_rules()

    def published(self, container_id: str) -> list[dict[str, Any]]:
        """The container's published ports (for `pynode port` and NetworkSettings.Ports)."""
        record = self._containers.get(container_id)
        return [p.to_docker() for p in record.ports] if record else []

    def _port_target(self, record: ContainerNet) -> tuple[str, str] | None:
        for ep in record.endpoints:
            network = self._networks.get(ep.network_id)
            if network is not None and network.driver in _BRIDGED and ep.address and network.iface:
                return ep.address, network.iface
        return None

    # --- overlay peers and services ---------------------------------------------------------------
    def _overlay(self, network_ref: str) -> Network:
        network = self.find(network_ref)
        if network.driver != "overlay":
            raise InvalidArgument(f"network {network.name} is a {network.driver} network; peers and service "
                                  "records belong to overlay networks")
        return network

    @off_loop
    def add_peers(self, network_ref: str, raw_peers: object) -> list[dict[str, str]]:
        """Program remote endpoints ([{IP, MAC, VTEP}]); a peer with a known IP replaces it. Idempotent."""
        with self._lock:
            network = self._overlay(network_ref)
            assert network.ipam is not None
            added = overlay.parse_peers(raw_peers, network.ipam.subnet)
            held = self._overlay_holders(network, peers=False)
            clash = next((p for p in added if p.ip in held), None)
            if clash is not None:
                raise Conflict(f"peer address {clash.ip} belongs to {held[clash.ip]} (network {network.name})")
            return self._set_peers(network, overlay.merge_peers(self._peers.get(network.id, ()), added))

    @off_loop
    def remove_peers(self, network_ref: str, addresses: Sequence[str] | None = None) -> list[dict[str, str]]:
        """Forget the peers with these IPs (None: all of them); unknown addresses are fine."""
        with self._lock:
            network = self._overlay(network_ref)
            gone = None if addresses is None else {str(a).split("/")[0] for a in addresses}
            kept = () if gone is None else tuple(p for p in self._peers.get(network.id, ()) if p.ip not in gone)
            return self._set_peers(network, kept)

    def _overlay_holders(self, network: Network, *, peers: bool = True, skip_service: str = "") -> dict[str, str]:
        """Addresses in use on an overlay -> who holds them (for one-line refusals)."""
        held = {ep.address: f"container {r.name or r.container_id[:12]} on this node"
                for r in self._containers_on(network.id) if (ep := r.endpoint_on(network.id)) and ep.address}
        if network.options.get(NODE_IP_OPT):
            held[network.options[NODE_IP_OPT]] = "this node"
        held |= {e.vip: f"service {e.name}'s VIP" for e in self._services.get(network.id, {}).values()
                 if e.vip and e.name != skip_service}
        if peers:
            held |= {p.ip: f"a task on node {p.vtep}" for p in self._peers.get(network.id, ())}
        return held

    def list_peers(self, network_ref: str) -> list[dict[str, str]]:
        with self._lock:
            return [p.to_docker() for p in self._peers.get(self._overlay(network_ref).id, ())]

    def _set_peers(self, network: Network, peers: tuple[Peer, ...]) -> list[dict[str, str]]:
        overlay.sync_peers(overlay.vxlan_name(network.id), peers)
        self._peers[network.id] = peers
        self._save_overlay(network.id)
        if network.options.get(NODE_IP_OPT):
            self._sync_rules()
        return [p.to_docker() for p in peers]

    @off_loop
    def set_service(self, network_ref: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a service record ({VIP, EndpointMode, Backends, Aliases}); the VIP's map in every
        sandbox on the network is replaced atomically (one nft transaction per sandbox)."""
        with self._lock:
            network = self._overlay(network_ref)
            assert network.ipam is not None
            entry = vip.parse_service(name, body, network.ipam.subnet)
            if entry.ports and not network.options.get(NODE_IP_OPT):
                raise InvalidArgument(f"service {entry.name}: publishing ports in ingress mode needs this node's own "
                                      f"address on network {network.name} (option {NODE_IP_OPT}), so that "
                                      "replies from tasks on other nodes come back through this node")
            services = self._services.setdefault(network.id, {})
            held = self._overlay_holders(network, skip_service=entry.name)
            if entry.vip is not None and entry.vip in held:
                raise Conflict(f"VIP {entry.vip} belongs to {held[entry.vip]} (network {network.name})")
            previous = services.get(entry.name)
            self._hold_ingress(entry, previous)
            services[entry.name] = entry
            self._save_overlay(network.id)
            self._sync_lb_on(network.id)
            if entry.ports or (previous is not None and previous.ports):
                self._sync_rules()
            return entry.to_docker()

    def _hold_ingress(self, entry: ServiceEntry, previous: ServiceEntry | None) -> None:
        """Hold the service's published ports on this node (as `publish` does for a container's): a port in
        use by a container, another service or any process is a Conflict naming it, and nothing is held."""
        wanted = {(p.protocol, p.published_port) for p in entry.ports}
        had = {(p.protocol, p.published_port) for p in previous.ports} if previous is not None else set()
        taken: list[tuple[str, int]] = []
        try:
            for proto, port in sorted(wanted - had):
                if (proto, port) in self._ingress_socks:
                    raise Conflict(f"port {port}/{proto} is already published by another service")
                binding = ports.PortBinding(container_port=port, proto=proto, host_ip="", host_port=port)
                self._ingress_socks[(proto, port)] = ports.reserve(binding)[0]
                taken.append((proto, port))
        except BaseException:
            for key in taken:
                self._ingress_socks.pop(key).close()
            raise
        for key in had - wanted:
            sock = self._ingress_socks.pop(key, None)
            if sock is not None:
                sock.close()

    @off_loop
    def remove_service(self, network_ref: str, name: str) -> None:
        """Forget a service record and its VIP (missing is fine)."""
        with self._lock:
            network = self._overlay(network_ref)
            entry = self._services.get(network.id, {}).pop(name.lower(), None)
            if entry is not None:
                self._hold_ingress(replace(entry, ports=()), entry)
                self._save_overlay(network.id)
                self._sync_lb_on(network.id)
                self._sync_rules()

    def list_services(self, network_ref: str) -> list[dict[str, Any]]:
        with self._lock:
            network = self._overlay(network_ref)
            return [e.to_docker() for e in sorted(self._services.get(network.id, {}).values(), key=lambda e: e.name)]

    def _sync_lb_on(self, network_id: str) -> None:
        for record in self._containers_on(network_id):
            self._sync_lb(record)

    def _sync_lb(self, record: ContainerNet, *, was_on_overlay: bool = False) -> None:
        """The sandbox's VIP table from the services of every overlay it is on (removed when none is left)."""
        if not record.sandbox or not is_namespace(Path(record.sandbox)):
            return
        on_overlay = [ep.network_id for ep in record.endpoints
                      if ep.network_id in self._networks and self._networks[ep.network_id].driver == "overlay"]
        if not on_overlay and not was_on_overlay:
            return
        entries = [e for nid in on_overlay for e in self._services.get(nid, {}).values()]
        vip.apply_lb(Path(record.sandbox), self.table, entries)

    def _save_overlay(self, network_id: str) -> None:
        data = {"peers": [p.to_docker() for p in self._peers.get(network_id, ())],
                "services": [e.to_json() for e in self._services.get(network_id, {}).values()]}
        write_json_atomic(self.state_dir / "overlay" / f"{network_id}.json", data)

    def _load_overlay(self, network_id: str) -> None:
        path = self.state_dir / "overlay" / f"{network_id}.json"
        if not path.exists():
            return
        data = read_json(path)
        self._peers[network_id] = tuple(Peer(ip=p["IP"], mac=p["MAC"], vtep=p["VTEP"]) for p in data.get("peers", ()))
        self._services[network_id] = {e["Name"]: ServiceEntry.from_json(e) for e in data.get("services", ())}

    # --- release and restore ---------------------------------------------------------------------
    @off_loop
    def release(self, container_id: str) -> None:
        """Everything of the container's networking: endpoints, ports, DNS, sandbox, record. Idempotent."""
        with self._lock:
            record = self._containers.get(container_id)
            self.unpublish(container_id)
            if record is None and not is_namespace(self.netns_dir / container_id):
                return  # never plumbed, or released already
            if record is not None:
                sandbox = Path(record.sandbox) if record.sandbox else None
                for endpoint in record.endpoints:
                    with contextlib.suppress(NodeError):
                        self._unplug(sandbox, endpoint)
                    if endpoint.network_id in self._networks:
                        self._emit("disconnect", self._networks[endpoint.network_id], container_id)
            self._close_dns(container_id)
            remove_namespace(self.netns_dir / container_id)
            self._containers.pop(container_id, None)
            (self.state_dir / "containers" / f"{container_id}.json").unlink(missing_ok=True)
            self._sync_rules()

    def _revive(self, record: ContainerNet) -> None:
        """After a daemon start: its DNS listener and port holds again (or drop a record whose sandbox died)."""
        if record.sandbox and not is_namespace(Path(record.sandbox)):
            self.release(record.container_id)
            return
        self._ensure_dns(record)
        with contextlib.suppress(NodeError):
            self._sync_lb(record)
        if record.ports and record.container_id not in self._port_socks:
            socks = []
            for port in record.ports:
                with contextlib.suppress(NodeError):
                    socks.append(ports.reserve(port.binding())[0])
            self._port_socks[record.container_id] = socks

    # --- name resolution -------------------------------------------------------------------------
    def lookup(self, container_id: str, qname: str) -> list[IPv4Address] | None:
        """Embedded DNS: addresses of `qname` on the user-defined networks `container_id` is on."""
        asking = self._containers.get(container_id)
        if asking is None:
            return None
        name = qname.rstrip(".").lower()
        mine = {ep.network_id for ep in asking.endpoints
                if ep.network_id in self._networks and self._networks[ep.network_id].has_dns}
        for network_id in sorted(mine):
            answer = vip.resolve(self._services.get(network_id, {}).values(), name, self._networks[network_id].name)
            if answer is not None:  # several task addresses come in a new order each time (DNS round robin)
                return random.sample(answer, len(answer))
        found: list[IPv4Address] = []
        for record in list(self._containers.values()):
            for ep in record.endpoints:
                if ep.network_id in mine and ep.address and self._answers(record, ep, name):
                    found.append(IPv4Address(ep.address))
        return found or None

    def _answers(self, record: ContainerNet, endpoint: Endpoint, name: str) -> bool:
        names = {n.lower() for n in self._dns_names(record, endpoint)}
        network = self._networks[endpoint.network_id].name.lower()
        return name in names or any(name == f"{n}.{network}" for n in names)

    def _dns_names(self, record: ContainerNet, endpoint: Endpoint) -> list[str]:
        names = [record.name] if record.name else []
        names += [a for a in endpoint.aliases if a not in names]
        names.append(record.container_id[:12])
        return names

    def upstreams(self) -> list[tuple[str, int]]:
        """Where names we don't know go: daemon.json `dns`, else the host's resolv.conf nameservers."""
        servers = list(self.config.dns) or _resolv_conf_servers(_read("/etc/resolv.conf"))
        return [(server, 53) for server in servers]

    def resolv_conf(self, container_id: str) -> str:
        """/etc/resolv.conf for the container: 127.0.0.11 on user-defined networks; the host's otherwise."""
        host = _read("/etc/resolv.conf")
        record = self._containers.get(container_id)
        search = [line for line in host.splitlines() if line.startswith(("search", "domain"))]
        if record is not None and any(self._networks[ep.network_id].driver == "host" for ep in record.endpoints
                                      if ep.network_id in self._networks):
            return host
        if record is not None and container_id in self._dns_open:
            return "\n".join([*search, f"nameserver {dns.RESOLVER_IP}", "options ndots:0"]) + "\n"
        servers = list(self.config.dns) or [s for s in _resolv_conf_servers(host) if not s.startswith("127.")]
        servers = servers or ["8.8.8.8", "8.8.4.4"]
        return "\n".join([*search, *(f"nameserver {s}" for s in servers)]) + "\n"

    def hosts(self, container_id: str) -> str:
        """/etc/hosts for the container: localhost lines and its own address and hostname."""
        record = self._containers.get(container_id)
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                 "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
        if record is None:
            return "\n".join(lines) + "\n"
        if any(self._networks.get(ep.network_id, None) and self._networks[ep.network_id].driver == "host"
               for ep in record.endpoints):
            return _read("/etc/hosts")
        hostname = record.hostname or record.container_id[:12]
        lines += [f"{ep.address}\t{hostname}" for ep in record.endpoints[:1] if ep.address]
        return "\n".join(lines) + "\n"

    def _ensure_dns(self, record: ContainerNet) -> None:
        cid = record.container_id
        wanted = record.sandbox and any(self._networks[ep.network_id].has_dns for ep in record.endpoints
                                        if ep.network_id in self._networks)
        if not wanted or cid in self._dns_open or self._loop is None:
            return
        assert record.sandbox is not None
        udp, tcp = dns.open_listener_sockets(Path(record.sandbox))
        self._dns_open.add(cid)
        self._on_loop(self.dns.serve(cid, udp, tcp))

    def _close_dns(self, container_id: str) -> None:
        if container_id in self._dns_open:
            self._dns_open.discard(container_id)
            self._on_loop(self.dns.close(container_id))

    def _on_loop(self, coro: Any) -> None:
        assert self._loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.add_done_callback(_log_failure)

    def _emit(self, action: str, network: Network, container_id: str | None = None) -> None:
        if self.events is not None:
            self.events.publish(type_="network", action=action, actor_id=network.id,
                                attributes=_attributes(network, container_id))

    # --- kernel state ----------------------------------------------------------------------------
    def _ensure_predefined(self) -> None:
        for name, driver in (("host", "host"), ("none", "null")):
            if self._find_or_none(name) is None:
                self._save_network(Network(id=secrets.token_hex(32), name=name, driver=driver, created=_now()))
        with _host_lock():
            current = self._find_or_none(DEFAULT_BRIDGE)
            ipam = self._default_bridge_ipam(current)
            network = current or Network(id=secrets.token_hex(32), name=DEFAULT_BRIDGE, driver="bridge",
                                         created=_now())
            network = replace(network, ipam=ipam, iface=self.default_iface,
                              options={"com.docker.network.bridge.default_bridge": "true",
                                       BRIDGE_NAME_OPT: self.default_iface})
            self._ensure_bridge(network)
            self._save_network(network)

    def _default_bridge_ipam(self, current: Network | None) -> IpamConfig:
        if self.config.bip:
            return bip_ipam(self.config.bip)
        if current is not None and current.ipam is not None:
            return current.ipam
        in_use = [n.ipam.subnet for n in self._networks.values() if n.ipam is not None]
        return plan_ipam(subnet=None, gateway=None, ip_range=None, pools=self._pools(),
                         networks_in_use=in_use, host_routes=self._host_routes())

    def _ensure_bridge(self, network: Network) -> None:
        assert network.iface is not None and network.ipam is not None
        links.ensure_bridge(network.iface, gateway=network.ipam.gateway, prefixlen=network.ipam.subnet.prefixlen)
        try:
            set_interface_sysctl(network.iface, "route_localnet", "1")
        except Exception:
            links.delete_link(network.iface)
            raise

    def _ensure_overlay(self, network: Network) -> Network:
        """The overlay's bridge and VXLAN device, and its peers' FDB and neighbour entries. The effective MTU
        is recorded in the network's options (container veths get it too)."""
        bridge, ipam = network.iface, network.ipam
        assert bridge is not None and ipam is not None
        settings = overlay.parse_settings(network.options, ipam.subnet, ipam.gateway)
        mtu = settings.mtu or overlay.underlay_mtu(settings.local) - overlay.VXLAN_OVERHEAD
        vxlan = overlay.vxlan_name(network.id)
        overlay.ensure_overlay(bridge=bridge, vxlan=vxlan, settings=settings, mtu=mtu, gateway=ipam.gateway,
                               prefixlen=ipam.subnet.prefixlen)
        try:
            set_interface_sysctl(bridge, "route_localnet", "1")
            overlay.sync_peers(vxlan, self._peers.get(network.id, ()))
        except Exception:
            overlay.delete_overlay(bridge=bridge, vxlan=vxlan)
            raise
        return replace(network, options={**network.options, MTU_OPT: str(mtu)})

    def _drop_network(self, network: Network) -> None:
        if network.driver == "bridge" and network.iface:
            links.delete_link(network.iface)
        elif network.driver == "overlay" and network.iface:
            overlay.delete_overlay(bridge=network.iface, vxlan=overlay.vxlan_name(network.id))
        for entry in self._services.get(network.id, {}).values():
            self._hold_ingress(replace(entry, ports=()), entry)
        self._networks.pop(network.id, None)
        self._peers.pop(network.id, None)
        self._services.pop(network.id, None)
        (self.state_dir / "networks" / f"{network.id}.json").unlink(missing_ok=True)
        (self.state_dir / "overlay" / f"{network.id}.json").unlink(missing_ok=True)

    def _sync_rules(self) -> None:
        bridges = [nft.BridgeRules(iface=n.iface, subnet=str(n.ipam.subnet), internal=n.internal,
                                   masquerade=n.options.get(MASQ_OPT, "true") != "false")
                   for n in self.list_networks() if n.driver in _BRIDGED and n.iface and n.ipam]
        rules = []
        for record in sorted(self._containers.values(), key=lambda r: r.container_id):
            target = self._port_target(record)
            if target is None:
                continue
            rules += [nft.PortRule(host_ip=p.host_ip, host_port=p.host_port, proto=p.proto, container_ip=target[0],
                                   container_port=p.container_port, iface=target[1], container_id=record.container_id)
                      for p in record.ports]
        ingress = [nft.IngressRule(host_port=p.published_port, proto=p.protocol, target_port=p.target_port,
                                   backends=entry.backends, service=entry.name)
                   for network_id in sorted(self._services) for entry in self._services[network_id].values()
                   for p in entry.ports]
        overlays = [nft.OverlaySnat(iface=n.iface, node_ip=n.options[NODE_IP_OPT],
                                    remote=tuple(p.ip for p in self._peers.get(n.id, ())))
                    for n in self.list_networks()
                    if n.driver == "overlay" and n.iface and n.options.get(NODE_IP_OPT)]
        script = nft.render_table(self.table, bridges, rules, ingress, overlays)
        if script == self._applied_rules:
            return  # most connects and releases change no rule: spare the nft run (the daemon's start always runs it)
        nft.apply(script)
        self._applied_rules = script

    def _host_routes(self) -> list[IPv4Network]:
        ours = {n.iface for n in self._networks.values() if n.iface}
        return links.host_routes(ours)

    def _pools(self) -> Any:
        return parse_pools(self.config.default_address_pools)

    def _containers_on(self, network_id: str) -> list[ContainerNet]:
        return [r for r in self._containers.values() if r.endpoint_on(network_id) is not None]

    # --- persistence -----------------------------------------------------------------------------
    def _load(self) -> None:
        self._networks.clear()
        self._containers.clear()
        self._peers.clear()
        self._services.clear()
        for path in sorted((self.state_dir / "networks").glob("*.json")):
            network = Network.from_json(read_json(path))
            self._networks[network.id] = network
            if network.driver == "overlay":
                self._load_overlay(network.id)
        for path in sorted((self.state_dir / "containers").glob("*.json")):
            record = ContainerNet.from_json(read_json(path))
            self._containers[record.container_id] = record

    def _save_network(self, network: Network) -> None:
        write_json_atomic(self.state_dir / "networks" / f"{network.id}.json", network.to_json())
        self._networks[network.id] = network

    def _save_container(self, record: ContainerNet) -> None:
        write_json_atomic(self.state_dir / "containers" / f"{record.container_id}.json", record.to_json())
        self._containers[record.container_id] = record


def _attributes(network: Network, container_id: str | None = None) -> dict[str, str]:
    attrs = {"name": network.name, "type": network.driver}
    return attrs | ({"container": container_id} if container_id else {})


def bip_ipam(bip: str) -> IpamConfig:
    """daemon.json `bip` (the bridge's own address with prefix, "172.30.0.1/16") -> the default bridge's IPAM."""
    try:
        iface = ipaddress.ip_interface(bip)
    except ValueError as exc:
        raise InvalidArgument(f"invalid bip {bip!r}: expected ADDRESS/PREFIX") from exc
    if not isinstance(iface, ipaddress.IPv4Interface) or iface.ip == iface.network.network_address:
        raise InvalidArgument(f"invalid bip {bip!r}: expected an IPv4 host address with prefix, like 172.30.0.1/16")
    return IpamConfig(subnet=iface.network, gateway=iface.ip)


def _check_driver(driver: str) -> str:
    driver = driver or "bridge"
    if driver == "ipvlan":
        raise InvalidArgument("ipvlan is not available: this kernel has no ipvlan support")
    if driver not in _DRIVERS:
        raise NotFound(f'plugin "{driver}" not found')
    return driver


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(HOST_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _label_matches(labels: Mapping[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _resolv_conf_servers(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("nameserver") and len(line.split()) > 1]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("network: loop task failed: %s", future.exception())
