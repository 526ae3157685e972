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
from typing import Any

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


def port_bindings_of(specs: Sequence[str]) -> tuple[dict[str, list[dict[str, str]]], dict[str, dict[str, object]]]:
    """`-p` specs -> Docker's HostConfig.PortBindings ({"80/tcp": [{"HostIp", "HostPort"}]}) and the
    ExposedPorts they imply ({"80/tcp": {}}), as the Docker CLI sends them."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        for b in parse_port_spec(spec):
            key = f"{b.container_port}/{b.proto}"
            bindings.setdefault(key, []).append({"HostIp": b.host_ip, "HostPort": str(b.host_port or "")})
    return bindings, {key: {} for key in bindings}


def plan_host_config_bindings(port_bindings: Mapping[str, Sequence[Mapping[str, object]] | None] | None, *,
                              exposed: Sequence[str] = (), publish_all: bool = False) -> list[dict[str, object]]:
    """HostConfig.PortBindings (plus, with PublishAllPorts, every exposed port not bound there on a random
    host port) -> the list `NetworkService.publish` takes. Bad entries are InvalidArgument naming them."""
    out: list[dict[str, object]] = []
    have: set[tuple[int, str]] = set()
    for key, entries in (port_bindings or {}).items():
        for entry in entries or [{}]:
            binding = normalize({"ContainerPort": key, "HostIp": entry.get("HostIp") or "",
                                 "HostPort": entry.get("HostPort") or ""})
            out.append(binding.to_docker())
            have.add((binding.container_port, binding.proto))
    if publish_all:
        for item in exposed:
            binding = normalize({"ContainerPort": item})
            if (binding.container_port, binding.proto) not in have:
                out.append(binding.to_docker())
                have.add((binding.container_port, binding.proto))
    return out


def ports_view(published: Sequence[Mapping[str, object]], exposed: Sequence[str] = ()) -> dict[str, Any]:
    """NetworkSettings.Ports of container inspect: {"80/tcp": [{"HostIp", "HostPort"}]}, exposed but
    unpublished ports as null."""
    view: dict[str, Any] = {item: None for item in exposed}
    for item in published:
        key = f"{item['ContainerPort']}/{item['Protocol']}"
        view[key] = [*(view.get(key) or []), {"HostIp": item["HostIp"] or "0.0.0.0", "HostPort": str(item["HostPort"])}]
    return view


def list_ports(published: Sequence[Mapping[str, object]], exposed: Sequence[str] = ()) -> list[dict[str, object]]:
    """`GET /containers/json` Ports: [{"IP", "PrivatePort", "PublicPort", "Type"}], exposed-only without IP."""
    out: list[dict[str, object]] = []
    bound = set()
    for item in published:
        bound.add(f"{item['ContainerPort']}/{item['Protocol']}")
        out.append({"IP": item["HostIp"] or "0.0.0.0", "PrivatePort": int(str(item["ContainerPort"])),
                    "PublicPort": int(str(item["HostPort"])), "Type": item["Protocol"]})
    for key in exposed:
        port, _, proto = key.partition("/")
        if key not in bound and port.isdigit():
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def display_ports(ports: Sequence[Mapping[str, Any]]) -> str:
    """`ps` PORTS as the Docker CLI prints it (its DisplayablePorts): consecutive ports grouped into ranges,
    `0.0.0.0:8080->8080/tcp` groups, `127.0.0.1:18080->80/tcp` mappings last."""
    def order(p: Mapping[str, Any]) -> tuple[int, str, int, str]:
        return int(p.get("PrivatePort") or 0), str(p.get("IP") or ""), int(p.get("PublicPort") or 0), str(p["Type"])

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []
    for p in sorted(ports, key=order):
        current, key = int(p["PrivatePort"]), str(p["Type"])
        if p.get("IP"):
            if int(p.get("PublicPort") or 0) != current:
                mappings.append(f"{p['IP']}:{p['PublicPort']}->{current}/{p['Type']}")
                continue
            key = f"{p['IP']}/{p['Type']}"
        group = groups.get(key)
        if group is not None and current == group[1] + 1:
            group[1] = current
            continue
        if group is not None:
            result.append(_form_group(key, *group))
        groups[key] = [current, current]
    result += [_form_group(key, *group) for key, group in groups.items()]
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, kind = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    return f"{ip}:{group}->{group}/{kind}" if ip else f"{group}/{kind}"


def expose_of(specs: Sequence[str]) -> dict[str, dict[str, object]]:
    """`--expose 80`, `--expose 8000-8002/udp` -> ExposedPorts entries."""
    out: dict[str, dict[str, object]] = {}
    for spec in specs:
        match = re.match(r"^(\d+(?:-\d+)?)(?:/(tcp|udp))?$", spec.strip())
        if match is None:
            raise InvalidArgument(f"invalid --expose {spec!r}: expected PORT[-PORT][/tcp|udp]")
        out |= {f"{port}/{match[2] or 'tcp'}": {} for port in _range(match[1], spec)}
    return out
