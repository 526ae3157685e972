"""The network subsystem's persistent records: frozen dataclasses with a JSON codec (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from node.network.ipam import IpamConfig
from node.network.ports import PortBinding

PREDEFINED = ("bridge", "host", "none")
DEFAULT_BRIDGE = "bridge"


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    id: str
    name: str
    driver: str  # bridge | macvlan | overlay | host | null
    created: str
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam: IpamConfig | None = None
    iface: str | None = None  # the Linux bridge (bridge and overlay drivers)
    parent: str | None = None  # macvlan parent

    @property
    def is_predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def has_dns(self) -> bool:
        """Embedded DNS serves user-defined bridge, macvlan and overlay networks, not the default bridge."""
        return self.driver in ("bridge", "macvlan", "overlay") and self.name != DEFAULT_BRIDGE

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ipam"] = _ipam_to_json(self.ipam)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Network:
        return cls(**{**data, "ipam": _ipam_from_json(data.get("ipam"))})


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    id: str
    network_id: str
    aliases: tuple[str, ...] = ()
    address: str | None = None
    prefixlen: int = 0
    mac: str = ""
    gateway: str | None = None  # the route this endpoint offers (None on --internal networks)
    ifname: str | None = None  # inside the sandbox
    host_ifname: str | None = None  # host side of the veth


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """A published port with its host port resolved."""

    host_ip: str
    host_port: int
    container_port: int
    proto: str

    def to_docker(self) -> dict[str, Any]:
        return {"HostIp": self.host_ip or "0.0.0.0", "HostPort": str(self.host_port),
                "ContainerPort": self.container_port, "Protocol": self.proto}

    def binding(self) -> PortBinding:
        return PortBinding(container_port=self.container_port, proto=self.proto, host_ip=self.host_ip,
                           host_port=self.host_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerNet:
    """All of one container's networking: its sandbox, endpoints and published ports."""

    container_id: str
    name: str = ""
    hostname: str = ""
    sandbox: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[Published, ...] = ()

    def endpoint_on(self, network_id: str) -> Endpoint | None:
        return next((ep for ep in self.endpoints if ep.network_id == network_id), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerNet:
        endpoints = tuple(Endpoint(**{**ep, "aliases": tuple(ep.get("aliases", ()))}) for ep in data["endpoints"])
        ports = tuple(Published(**p) for p in data.get("ports", ()))
        return cls(**{**data, "endpoints": endpoints, "ports": ports})


def _ipam_to_json(ipam: IpamConfig | None) -> dict[str, str] | None:
    return ipam.to_docker() if ipam is not None else None


def _ipam_from_json(data: dict[str, str] | None) -> IpamConfig | None:
    if not data:
        return None
    return IpamConfig(subnet=IPv4Network(data["Subnet"]), gateway=IPv4Address(data["Gateway"]),
                      ip_range=IPv4Network(data["IPRange"]) if data.get("IPRange") else None)
