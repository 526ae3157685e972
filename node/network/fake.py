"""What the container service needs of networking, as a Protocol, and an in-memory fake of it for unit
tests that must not touch the kernel (addresses from the real, pure IPAM; no namespaces, links or rules).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Protocol

from node.errors import Conflict, NotFound
from node.network.ipam import IpamConfig, allocate_address, mac_for
from node.network.ports import normalize


class SandboxNetworking(Protocol):
    """The calls the container service makes; NetworkService implements them against the kernel."""

    def create_sandbox(self, container_id: str) -> Path: ...
    def remove_sandbox(self, container_id: str) -> None: ...
    def connect(self, container_id: str, network_ref: str, *, name: str = "", aliases: Iterable[str] = (),
                ipv4_address: str | None = None, hostname: str | None = None,
                mac_address: str | None = None) -> dict[str, Any]: ...
    def disconnect(self, container_id: str, network_ref: str, *, force: bool = False) -> None: ...
    def publish(self, container_id: str, bindings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...
    def unpublish(self, container_id: str) -> None: ...
    def release(self, container_id: str) -> None: ...
    def resolv_conf(self, container_id: str) -> str: ...
    def hosts(self, container_id: str) -> str: ...
    def restore(self, running: Sequence[tuple[str, int | None]]) -> None: ...


class FakeNetworkService:
    """Networks `bridge` (172.17.0.0/16), `host`, `none`, plus any added with `add_network`."""

    def __init__(self, root: Path = Path("/nonexistent/netns")) -> None:
        self.root = root
        self.networks: dict[str, IpamConfig | None] = {"host": None, "none": None}
        self.endpoints: dict[str, dict[str, dict[str, Any]]] = {}
        self.ports: dict[str, list[dict[str, Any]]] = {}
        self._next_port = itertools.count(49153)
        self.add_network("bridge", "172.17.0.0/16")

    def add_network(self, name: str, subnet: str) -> None:
        net = IPv4Network(subnet)
        self.networks[name] = IpamConfig(subnet=net, gateway=net.network_address + 1)

    def create_sandbox(self, container_id: str) -> Path:
        self.endpoints.setdefault(container_id, {})
        return self.root / container_id

    def remove_sandbox(self, container_id: str) -> None:
        self.endpoints.pop(container_id, None)

    def connect(self, container_id: str, network_ref: str, *, name: str = "", aliases: Iterable[str] = (),
                ipv4_address: str | None = None, hostname: str | None = None,
                mac_address: str | None = None) -> dict[str, Any]:
        if network_ref not in self.networks:
            raise NotFound(f"network {network_ref} not found")
        mine = self.endpoints.setdefault(container_id, {})
        if network_ref in mine:
            raise Conflict(f"endpoint with name {name} already exists in network {network_ref}")
        ipam = self.networks[network_ref]
        settings: dict[str, Any] = {"NetworkID": network_ref, "EndpointID": f"ep-{container_id[:8]}-{network_ref}",
                                    "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "",
                                    "Aliases": list(aliases) or None, "DNSNames": None}
        if ipam is not None:
            taken = [IPv4Address(eps[network_ref]["IPAddress"]) for eps in self.endpoints.values()
                     if network_ref in eps and eps[network_ref]["IPAddress"]]
            address = allocate_address(ipam, taken, ipv4_address)
            settings |= {"Gateway": str(ipam.gateway), "IPAddress": str(address),
                         "IPPrefixLen": ipam.subnet.prefixlen, "MacAddress": mac_address or mac_for(address)}
        mine[network_ref] = settings
        return settings

    def disconnect(self, container_id: str, network_ref: str, *, force: bool = False) -> None:
        if self.endpoints.get(container_id, {}).pop(network_ref, None) is None and not force:
            raise NotFound(f"container {container_id[:12]} is not connected to network {network_ref}")

    def publish(self, container_id: str, bindings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for raw in bindings:
            binding = normalize(dict(raw))
            port = binding.host_port or next(self._next_port)
            if any(p["HostPort"] == str(port) for ps in self.ports.values() for p in ps):
                raise Conflict(f"Bind for {binding.host_ip or '0.0.0.0'}:{port} failed: port is already allocated")
            out.append({"HostIp": binding.host_ip or "0.0.0.0", "HostPort": str(port),
                        "ContainerPort": binding.container_port, "Protocol": binding.proto})
        self.ports.setdefault(container_id, []).extend(out)
        return out

    def unpublish(self, container_id: str) -> None:
        self.ports.pop(container_id, None)

    def release(self, container_id: str) -> None:
        self.unpublish(container_id)
        self.remove_sandbox(container_id)

    def resolv_conf(self, container_id: str) -> str:
        return "nameserver 127.0.0.11\noptions ndots:0\n"

    def hosts(self, container_id: str) -> str:
        return "127.0.0.1\tlocalhost\n"

    def restore(self, running: Sequence[tuple[str, int | None]]) -> None:
        alive = {cid for cid, pid in running if pid}
        for cid in list(self.endpoints):
            if cid not in alive:
                self.release(cid)
