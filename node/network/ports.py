"""Published ports: parsing Docker's `-p` syntax (pure) and holding host ports.

A published port is held by a bound (not listening) socket in the daemon, so another process cannot take
it, and trying that bind is how a port already in use anywhere on the host is detected. Traffic itself
never reaches the socket: nftables DNATs it before the socket lookup.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from node.errors import Conflict, InvalidArgument

_SPEC = re.compile(
    r"^(?:(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]*\]):)?(?:(?P<host>\d*(?:-\d+)?):)?"
    r"(?P<container>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortBinding:
    container_port: int
    proto: str
    host_ip: str = ""
    host_port: int = 0  # 0: a random free port

    def to_docker(self) -> dict[str, object]:
        return {"HostIp": self.host_ip, "HostPort": str(self.host_port) if self.host_port else "",
                "ContainerPort": self.container_port, "Protocol": self.proto}


def parse_port_spec(spec: str) -> list[PortBinding]:
    """`8080:80`, `127.0.0.1:8080:80/udp`, `8080-8085:80-85`, `80`, `127.0.0.1::80` -> bindings."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise InvalidArgument(f"invalid port specification: {spec!r}")
    proto = match["proto"] or "tcp"
    if proto == "sctp":
        raise InvalidArgument(f"invalid port specification: {spec!r}: sctp is not supported")
    host_ip = (match["ip"] or "").strip("[]")
    container = _range(match["container"], spec)
    host = _range(match["host"], spec) if match["host"] else []
    if host and len(host) != len(container):
        if len(container) != 1:
            raise InvalidArgument(f"invalid port specification: {spec!r}: port ranges must be the same length")
        return [PortBinding(container_port=container[0], proto=proto, host_ip=host_ip, host_port=h) for h in host[:1]]
    return [PortBinding(container_port=c, proto=proto, host_ip=host_ip, host_port=host[i] if host else 0)
            for i, c in enumerate(container)]


def _range(text: str, spec: str) -> list[int]:
    first, _, last = text.partition("-")
    lo, hi = int(first), int(last or first)
    if not 0 < lo <= hi <= 65535:
        raise InvalidArgument(f"invalid port specification: {spec!r}: invalid port range {text}")
    return list(range(lo, hi + 1))


def normalize(raw: dict[str, object]) -> PortBinding:
    """An API binding ({HostIp, HostPort, ContainerPort, Protocol}, ContainerPort maybe '80/tcp')."""
    cport, _, cproto = str(raw.get("ContainerPort", "")).partition("/")
    proto = str(raw.get("Protocol") or cproto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid protocol {proto!r}: tcp or udp")
    host_ip = str(raw.get("HostIp") or "")
    host_port = str(raw.get("HostPort") or "0")
    try:
        binding = PortBinding(container_port=int(cport), proto=proto, host_ip=host_ip, host_port=int(host_port))
    except ValueError as exc:
        raise InvalidArgument(f"invalid port binding {raw}") from exc
    if not 0 < binding.container_port <= 65535 or not 0 <= binding.host_port <= 65535:
        raise InvalidArgument(f"invalid port binding {raw}: port out of range")
    if ":" in host_ip:
        raise InvalidArgument(f"invalid host IP {host_ip}: only IPv4 is supported")
    return binding


def reserve(binding: PortBinding) -> tuple[socket.socket, int]:
    """Bind host_ip:host_port (0: any free port) to hold it; Conflict naming the port if it is in use."""
    kind = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    address = binding.host_ip or "0.0.0.0"
    try:
        sock.bind((address, binding.host_port))
    except OSError as exc:
        sock.close()
        if exc.errno == 99:  # EADDRNOTAVAIL
            raise InvalidArgument(f"Bind for {address}:{binding.host_port} failed: {address} is not an address "
                                  "of this host") from exc
        raise Conflict(f"Bind for {address}:{binding.host_port} failed: port is already allocated") from exc
    return sock, sock.getsockname()[1]


def plan_bindings(specs: Sequence[str], *, exposed: Sequence[str] = (), publish_all: bool = False) -> list[
        dict[str, object]]:
    """`-p` specs plus, with `-P`, every EXPOSEd port ("80/tcp") not already published, on a random host
    port: the list `NetworkService.publish` takes."""
    bindings = [b for spec in specs for b in parse_port_spec(spec)]
    if publish_all:
        have = {(b.container_port, b.proto) for b in bindings}
        for item in exposed:
            port, _, proto = item.partition("/")
            key = (int(port), proto or "tcp")
            if key not in have:
                bindings.append(PortBinding(container_port=key[0], proto=key[1]))
                have.add(key)
    return [b.to_docker() for b in bindings]


def port_lines(published: Sequence[Mapping[str, object]], *, private: str | None = None) -> list[str]:
    """`pynode port` lines ("80/tcp -> 0.0.0.0:8080"), optionally only for PRIVATE_PORT[/PROTO]."""
    lines = []
    for item in published:
        key = f"{item['ContainerPort']}/{item['Protocol']}"
        if private is None or private in (key, str(item["ContainerPort"])):
            lines.append(f"{key} -> {item['HostIp'] or '0.0.0.0'}:{item['HostPort']}")
    return lines
