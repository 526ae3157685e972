"""The normalised Compose model: typed, frozen views over the long-syntax document.

Each object keeps the part of the normalised document it was built from in `raw`, so that
`pycompose config` prints exactly what the model holds and `config_hash` hashes it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DependencyCondition(enum.StrEnum):
    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED_SUCCESSFULLY = "service_completed_successfully"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortConfig:
    target: int
    published: str | None = None  # a port or a range such as "8000-8010"; None: engine picks
    host_ip: str = ""
    protocol: str = "tcp"
    mode: str = "ingress"


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeMount:
    type: str  # bind, volume, tmpfs, npipe, cluster, image
    target: str
    source: str | None = None
    read_only: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)  # the bind/volume/tmpfs sub-mapping


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    condition: DependencyCondition = DependencyCondition.STARTED
    restart: bool = False
    required: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceNetwork:
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Healthcheck:
    test: tuple[str, ...] = ()
    interval_ns: int | None = None
    timeout_ns: int | None = None
    start_period_ns: int | None = None
    start_interval_ns: int | None = None
    retries: int | None = None
    disabled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReference:
    """A service's use of a secret or config."""

    source: str
    target: str
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildConfig:
    context: str
    dockerfile: str | None = "Dockerfile"
    args: Mapping[str, str | None] = field(default_factory=dict)
    target: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    name: str
    image: str | None
    build: BuildConfig | None
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    environment: Mapping[str, str]
    labels: Mapping[str, str]
    ports: tuple[PortConfig, ...]
    expose: tuple[str, ...]
    volumes: tuple[VolumeMount, ...]
    networks: Mapping[str, ServiceNetwork]
    network_mode: str | None
    depends_on: Mapping[str, Dependency]
    healthcheck: Healthcheck | None
    secrets: tuple[FileReference, ...]
    configs: tuple[FileReference, ...]
    container_name: str | None
    restart: str | None
    scale: int
    profiles: tuple[str, ...]
    raw: Mapping[str, Any]  # the normalised long-syntax mapping; everything else lives here


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """A top-level network, volume, secret or config."""

    key: str
    name: str  # the engine-side name: `<project>_<key>`, or as set, or the external name
    external: bool
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    name: str
    working_dir: Path
    config_files: tuple[Path, ...]
    services: Mapping[str, ServiceConfig]
    networks: Mapping[str, Resource]
    volumes: Mapping[str, Resource]
    secrets: Mapping[str, Resource]
    configs: Mapping[str, Resource]
    raw: Mapping[str, Any]  # the whole normalised document, as `pycompose config` prints it
    disabled_services: tuple[str, ...] = ()  # defined, but off for the active profiles
    profiles: tuple[str, ...] = ()  # every profile some service names
    warnings: tuple[str, ...] = ()


def _healthcheck(raw: Mapping[str, Any] | None) -> Healthcheck | None:
    if raw is None:
        return None
    # here, not at the top: compose.loader imports this module, so `import compose.model` first would be a cycle
    from compose.loader.durations import parse_duration

    def ns(key: str) -> int | None:
        return parse_duration(raw[key]) if key in raw else None

    return Healthcheck(test=tuple(raw.get("test") or ()), interval_ns=ns("interval"), timeout_ns=ns("timeout"),
                       start_period_ns=ns("start_period"), start_interval_ns=ns("start_interval"),
                       retries=raw.get("retries"), disabled=bool(raw.get("disable")))


def _volume(raw: Mapping[str, Any]) -> VolumeMount:
    kind = raw["type"]
    return VolumeMount(type=kind, target=raw["target"], source=raw.get("source"),
                       read_only=bool(raw.get("read_only", False)), options=dict(raw.get(kind) or {}))


def _file_ref(raw: Mapping[str, Any]) -> FileReference:
    mode = raw.get("mode")
    return FileReference(source=raw["source"], target=raw["target"], uid=raw.get("uid"), gid=raw.get("gid"),
                         mode=int(str(mode), 8) if isinstance(mode, str) else mode)


def _network(raw: Mapping[str, Any] | None) -> ServiceNetwork:
    raw = raw or {}
    return ServiceNetwork(aliases=tuple(raw.get("aliases") or ()), ipv4_address=raw.get("ipv4_address"),
                          ipv6_address=raw.get("ipv6_address"))


def _build(raw: Mapping[str, Any] | None) -> BuildConfig | None:
    if raw is None:
        return None
    return BuildConfig(context=raw["context"], dockerfile=raw.get("dockerfile"), args=dict(raw.get("args") or {}),
                       target=raw.get("target"))


def _scale(raw: Mapping[str, Any]) -> int:
    replicas = (raw.get("deploy") or {}).get("replicas")
    return int(replicas if replicas is not None else raw.get("scale", 1))


def _command(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def build_service(name: str, raw: Mapping[str, Any]) -> ServiceConfig:
    """The typed view of one normalised service mapping."""
    return ServiceConfig(
        name=name, image=raw.get("image"), build=_build(raw.get("build")),
        command=_command(raw.get("command")), entrypoint=_command(raw.get("entrypoint")),
        environment={k: v for k, v in (raw.get("environment") or {}).items() if v is not None},
        labels=dict(raw.get("labels") or {}),
        ports=tuple(PortConfig(**p) for p in (
            {k: v for k, v in port.items() if k in ("target", "published", "host_ip", "protocol", "mode")}
            for port in raw.get("ports") or [])),
        expose=tuple(raw.get("expose") or ()),
        volumes=tuple(_volume(v) for v in raw.get("volumes") or []),
        networks={k: _network(v) for k, v in (raw.get("networks") or {}).items()},
        network_mode=raw.get("network_mode"),
        depends_on={k: Dependency(condition=DependencyCondition(v["condition"]), restart=v["restart"],
                                  required=v["required"]) for k, v in (raw.get("depends_on") or {}).items()},
        healthcheck=_healthcheck(raw.get("healthcheck")),
        secrets=tuple(_file_ref(r) for r in raw.get("secrets") or []),
        configs=tuple(_file_ref(r) for r in raw.get("configs") or []),
        container_name=raw.get("container_name"), restart=raw.get("restart"), scale=_scale(raw),
        profiles=tuple(raw.get("profiles") or ()), raw=raw,
    )


def build_resources(section: Mapping[str, Any] | None) -> dict[str, Resource]:
    return {key: Resource(key=key, name=spec["name"], external=bool(spec.get("external")), raw=spec)
            for key, spec in (section or {}).items()}


# Fields that do not change the container: compose leaves them out of the config hash too.
_UNHASHED = ("build", "pull_policy", "scale", "depends_on", "profiles")


def config_hash(service: ServiceConfig) -> str:
    """sha256 of the service's normalised config, as `com.docker.compose.config-hash`."""
    raw = {k: v for k, v in service.raw.items() if k not in _UNHASHED}
    if isinstance(raw.get("deploy"), Mapping):
        raw["deploy"] = {k: v for k, v in raw["deploy"].items() if k != "replicas"}
    encoded = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()
