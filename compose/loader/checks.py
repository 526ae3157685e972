"""Semantic checks on the normalised project: references, dependency cycles, port clashes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from compose.loader.errors import Issue


@dataclass(frozen=True, slots=True, kw_only=True)
class _Binding:
    service: str
    index: int
    host_ip: str
    ports: frozenset[int]
    protocol: str


_WILDCARDS = ("", "0.0.0.0", "::")


def _issue(origins: Mapping[str, str], service: str, path: str, message: str) -> Issue:
    return Issue(file=origins.get(service, ""), path=f"services.{service}{path}", message=message)


def _check_image(services: Mapping[str, Any], origins: Mapping[str, str]) -> Iterator[Issue]:
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            yield _issue(origins, name, "", "has neither an image nor a build context specified")


def _check_references(document: Mapping[str, Any], origins: Mapping[str, str]) -> Iterator[Issue]:
    services = document["services"]
    sections = {key: document.get(key) or {} for key in ("networks", "volumes", "secrets", "configs")}
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            if dep not in services and spec.get("required", True):
                yield _issue(origins, name, f".depends_on.{dep}", f'service "{dep}" is not defined')
        for net in svc.get("networks") or {}:
            if net not in sections["networks"]:
                yield _issue(origins, name, f".networks.{net}", f'network "{net}" is not defined')
        for i, vol in enumerate(svc.get("volumes") or []):
            source = vol.get("source")
            if vol.get("type") == "volume" and source and source not in sections["volumes"]:
                yield _issue(origins, name, f".volumes[{i}]", f'volume "{source}" is not defined')
        for kind in ("secrets", "configs"):
            for i, ref in enumerate(svc.get(kind) or []):
                if ref["source"] not in sections[kind]:
                    yield _issue(origins, name, f".{kind}[{i}]", f'{kind[:-1]} "{ref["source"]}" is not defined')
        for i, ref in enumerate((svc.get("build") or {}).get("secrets") or []):
            if ref["source"] not in sections["secrets"]:
                yield _issue(origins, name, f".build.secrets[{i}]", f'secret "{ref["source"]}" is not defined')


def find_dependency_cycle(services: Mapping[str, Any]) -> list[str] | None:
    """Return a cycle such as ['web', 'api', 'web'] if depends_on has one."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(services[name].get("depends_on") or {}):
            if dep not in services:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(services):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def _port_set(published: str) -> frozenset[int]:
    first, _, last = published.partition("-")
    return frozenset(range(int(first), int(last or first) + 1))


def _bindings(services: Mapping[str, Any]) -> Iterator[_Binding]:
    for name, svc in sorted(services.items()):
        for i, port in enumerate(svc.get("ports") or []):
            if port.get("published"):
                yield _Binding(service=name, index=i, host_ip=port.get("host_ip", ""),
                               ports=_port_set(str(port["published"])), protocol=port["protocol"])


def _clash(a: _Binding, b: _Binding) -> bool:
    same_ip = a.host_ip == b.host_ip or a.host_ip in _WILDCARDS or b.host_ip in _WILDCARDS
    return a.service != b.service and a.protocol == b.protocol and same_ip and bool(a.ports & b.ports)


def _check_ports(services: Mapping[str, Any], origins: Mapping[str, str]) -> Iterator[Issue]:
    seen: list[_Binding] = []
    for binding in _bindings(services):
        other = next((s for s in seen if _clash(s, binding)), None)
        if other:
            port = min(binding.ports & other.ports)
            ip = f"{binding.host_ip}:" if binding.host_ip else ""
            yield _issue(origins, binding.service, f".ports[{binding.index}]",
                         f'host port {ip}{port}/{binding.protocol} is already published by service "{other.service}"')
        seen.append(binding)


def _check_container_names(services: Mapping[str, Any], origins: Mapping[str, str]) -> Iterator[Issue]:
    for name, svc in services.items():
        replicas = (svc.get("deploy") or {}).get("replicas")
        if "scale" in svc and replicas is not None and svc["scale"] != replicas:
            yield _issue(origins, name, ".scale", f"scale {svc['scale']} differs from deploy.replicas {replicas}")
        if "container_name" in svc and max(svc.get("scale", 1), replicas or 1) > 1:
            yield _issue(origins, name, ".container_name",
                         "can't be set when the service has more than one replica (names must be unique)")


def check_project(document: Mapping[str, Any], origins: Mapping[str, str]) -> list[Issue]:
    """Every semantic problem of a normalised project, in a stable order."""
    services = document["services"]
    issues = [*_check_image(services, origins), *_check_references(document, origins)]
    cycle = find_dependency_cycle(services)
    if cycle:
        issues.append(_issue(origins, cycle[0], ".depends_on",
                             f"dependency cycle detected: {' -> '.join(cycle)}"))
    issues += [*_check_ports(services, origins), *_check_container_names(services, origins)]
    return issues
