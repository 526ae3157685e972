"""Pure translation of a compose service into Docker Engine API request bodies.

`container_create_body` is what `POST /containers/create` receives for one container of a service;
`network_create_body` and `volume_create_body` the same for the project's resources. Nothing here
talks to an engine or reads files: secrets and configs whose content is not a file are written by the
applier, which passes their host paths in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compose.errors import ComposeError
from compose.loader.durations import parse_duration
from compose.model import Healthcheck, Project, Resource, ServiceConfig

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class SpecError(ComposeError):
    """A service says something the engine request can't express."""


def parse_size(value: Any) -> int:
    """Compose's byte sizes: 64m, 1g, 512k, 1024 (bytes)."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(str(value))
    if not match:
        raise SpecError(f"invalid size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _seconds(ns: int | None) -> int | None:
    return None if ns is None else max(ns // 1_000_000_000, 0)


def healthcheck_body(check: Healthcheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    if check.disabled or check.test[:1] == ("NONE",):
        return {"Test": ["NONE"]}
    body: dict[str, Any] = {"Test": list(check.test)}
    for key, value in (("Interval", check.interval_ns), ("Timeout", check.timeout_ns),
                       ("StartPeriod", check.start_period_ns), ("StartInterval", check.start_interval_ns),
                       ("Retries", check.retries)):
        if value is not None:
            body[key] = value
    return body


def _port_key(target: int | str, protocol: str) -> str:
    return f"{target}/{protocol or 'tcp'}"


def _expose_keys(expose: tuple[str, ...]) -> list[str]:
    keys = []
    for entry in expose:
        port, _, protocol = str(entry).partition("/")
        if "-" in port:
            start, end = (int(p) for p in port.split("-", 1))
            keys += [_port_key(p, protocol) for p in range(start, end + 1)]
        else:
            keys.append(_port_key(port, protocol))
    return keys


def port_bindings(service: ServiceConfig) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in service.ports:
        bindings.setdefault(_port_key(port.target, port.protocol), []).append(
            {"HostIp": port.host_ip or "", "HostPort": str(port.published or "")})
    return bindings


def restart_policy(service: ServiceConfig) -> dict[str, Any]:
    """`restart:` wins; else deploy.restart_policy (none -> no, any -> always, on-failure)."""
    if service.restart:
        name, _, count = service.restart.partition(":")
        return {"Name": name, "MaximumRetryCount": int(count or 0)}
    policy = (service.raw.get("deploy") or {}).get("restart_policy")
    if not policy:
        return {"Name": "no", "MaximumRetryCount": 0}
    condition = {"none": "no", "any": "always", "on-failure": "on-failure"}[policy.get("condition", "any")]
    attempts = int(policy.get("max_attempts") or 0) if condition == "on-failure" else 0
    return {"Name": condition, "MaximumRetryCount": attempts}


def _resources(raw: Mapping[str, Any]) -> dict[str, Any]:
    limits = ((raw.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    out: dict[str, Any] = {}
    memory = limits.get("memory", raw.get("mem_limit"))
    if memory is not None:
        out["Memory"] = parse_size(memory)
    cpus = limits.get("cpus", raw.get("cpus"))
    if cpus is not None and float(cpus):
        out["NanoCpus"] = int(float(cpus) * 1e9)
    pids = limits.get("pids", raw.get("pids_limit"))
    if pids is not None:
        out["PidsLimit"] = int(pids)
    if raw.get("memswap_limit") is not None:
        out["MemorySwap"] = -1 if str(raw["memswap_limit"]) == "-1" else parse_size(raw["memswap_limit"])
    if raw.get("shm_size") is not None:
        out["ShmSize"] = parse_size(raw["shm_size"])
    return out


def _ulimits(raw: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for name, value in (raw or {}).items():
        if isinstance(value, Mapping):
            out.append({"Name": name, "Soft": int(value["soft"]), "Hard": int(value["hard"])})
        else:
            out.append({"Name": name, "Soft": int(value), "Hard": int(value)})
    return out


def _extra_hosts(entries: Any) -> list[str]:
    """The model keeps compose v2's `host=ip`; the engine API takes `host:ip`."""
    return [str(e).replace("=", ":", 1) if "=" in str(e) else str(e) for e in entries or []]


def _tmpfs(entries: Any) -> dict[str, str]:
    if isinstance(entries, str):
        entries = [entries]
    out = {}
    for entry in entries or []:
        target, _, options = str(entry).partition(":")
        out[target] = options
    return out


def _mounts(project: Project, service: ServiceConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """Binds (for bind mounts, which the engine may create) and Mounts (volumes, tmpfs)."""
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    for volume in service.volumes:
        if volume.type == "bind":
            mode = "ro" if volume.read_only else "rw"
            binds.append(f"{volume.source}:{volume.target}:{mode}")
        elif volume.type == "volume":
            source = ""
            if volume.source:
                declared = project.volumes.get(volume.source)
                source = declared.name if declared is not None else volume.source
            mount: dict[str, Any] = {"Type": "volume", "Source": source, "Target": volume.target,
                                     "ReadOnly": volume.read_only}
            if volume.options.get("nocopy"):
                mount["VolumeOptions"] = {"NoCopy": True}
            mounts.append(mount)
        elif volume.type == "tmpfs":
            mount = {"Type": "tmpfs", "Target": volume.target, "ReadOnly": volume.read_only}
            options = {}
            if volume.options.get("size") is not None:
                options["SizeBytes"] = parse_size(volume.options["size"])
            if volume.options.get("mode") is not None:
                options["Mode"] = int(volume.options["mode"])
            if options:
                mount["TmpfsOptions"] = options
            mounts.append(mount)
        else:
            raise SpecError(f"service {service.name}: volume type {volume.type!r} is not supported by this engine")
    return binds, mounts


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSource:
    """A secret or config a service uses: a host file, or content the applier must write first."""

    kind: str  # secrets | configs
    key: str
    target: str
    path: str | None = None  # a host file
    content: str | None = None  # environment or inline content


def file_sources(project: Project, service: ServiceConfig, environ: Mapping[str, str]) -> list[FileSource]:
    out = []
    for kind, refs, declared in (("secrets", service.secrets, project.secrets),
                                 ("configs", service.configs, project.configs)):
        for ref in refs:
            resource = declared.get(ref.source)
            if resource is None:
                raise SpecError(f"service {service.name} refers to undefined {kind[:-1]} {ref.source}")
            out.append(_file_source(kind, resource, ref.target, environ))
    return out


def _file_source(kind: str, resource: Resource, target: str, environ: Mapping[str, str]) -> FileSource:
    raw = resource.raw
    if raw.get("file"):
        return FileSource(kind=kind, key=resource.key, target=target, path=str(raw["file"]))
    if raw.get("environment"):
        name = str(raw["environment"])
        if name not in environ:
            raise SpecError(f"{kind[:-1]} {resource.key}: environment variable {name} is not set")
        return FileSource(kind=kind, key=resource.key, target=target, content=environ[name])
    if "content" in raw:
        return FileSource(kind=kind, key=resource.key, target=target, content=str(raw["content"]))
    raise SpecError(f"{kind[:-1]} {resource.key}: external {kind} need a swarm; use file, environment or content")


def _network_order(service: ServiceConfig) -> list[str]:
    raw = service.raw.get("networks") or {}

    def priority(key: str) -> int:
        return int((raw.get(key) or {}).get("priority", 0) or 0)

    return sorted(service.networks, key=lambda k: (-priority(k), k))


def endpoint_config(project: Project, service: ServiceConfig, key: str) -> dict[str, Any]:
    """Docker's EndpointSettings for one of the service's networks: the service name is an alias."""
    settings = service.networks[key]
    aliases = [service.name, *(a for a in settings.aliases if a != service.name)]
    body: dict[str, Any] = {"Aliases": aliases}
    if settings.ipv4_address:
        body["IPAMConfig"] = {"IPv4Address": settings.ipv4_address}
    return body


def network_attachments(project: Project, service: ServiceConfig) -> list[tuple[str, dict[str, Any]]]:
    """(engine network name, endpoint settings) in compose's order: the first is the primary network."""
    return [(project.networks[key].name, endpoint_config(project, service, key))
            for key in _network_order(service) if key in project.networks]


def image_name(project: Project, service: ServiceConfig) -> str:
    """`image:`, else compose v2's default name for a built image: `<project>-<service>`."""
    return service.image or f"{project.name}-{service.name}"


def _command(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _network_mode(project: Project, service: ServiceConfig, resolve: Mapping[str, str]) -> str | None:
    mode = service.network_mode
    if mode is None:
        return None
    if mode.startswith("service:"):
        other = mode.split(":", 1)[1]
        if other not in resolve:
            raise SpecError(f"service {service.name}: network_mode {mode}: no container of {other} found")
        return f"container:{resolve[other]}"
    return mode


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateOptions:
    """What one container adds to its service's config."""

    name: str
    labels: Mapping[str, str]
    secret_paths: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (kind, key) -> host path
    service_containers: Mapping[str, str] = field(default_factory=dict)  # service -> one of its containers
    command: tuple[str, ...] | None = None  # `run` overrides
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] | None = None
    tty: bool | None = None
    stdin_open: bool | None = None
    ports: bool = True  # `run` publishes only with --service-ports
    extra_port_bindings: Mapping[str, list[dict[str, str]]] | None = None
    auto_remove: bool = False
    user: str | None = None
    working_dir: str | None = None


def container_create_body(
    project: Project, service: ServiceConfig, options: CreateOptions, *, environ: Mapping[str, str] = {},
) -> dict[str, Any]:
    """The `POST /containers/create` body for one container of `service`."""
    raw = service.raw
    binds, mounts = _mounts(project, service)
    secret_paths = options.secret_paths
    for source in file_sources(project, service, environ):
        path = source.path if source.path is not None else secret_paths.get((source.kind, source.key))
        if path is None:
            raise SpecError(f"{source.kind[:-1]} {source.key}: its content was not written")
        binds.append(f"{path}:{source.target}:ro")
    attachments = network_attachments(project, service)
    network_mode = _network_mode(project, service, options.service_containers)
    if network_mode is None:
        network_mode = attachments[0][0] if attachments else "none"
    exposed = _expose_keys(service.expose) + [_port_key(p.target, p.protocol) for p in service.ports]
    bindings = port_bindings(service) if options.ports else {}
    bindings.update(options.extra_port_bindings or {})
    exposed += list(options.extra_port_bindings or {})
    environment = {**service.environment, **(options.environment or {})}
    host_config: dict[str, Any] = {
        "Binds": binds, "Mounts": mounts, "Tmpfs": _tmpfs(raw.get("tmpfs")), "PortBindings": bindings,
        "RestartPolicy": restart_policy(service) if not options.auto_remove else {"Name": "no"},
        "AutoRemove": options.auto_remove, "NetworkMode": network_mode,
        "CapAdd": list(raw.get("cap_add") or []), "CapDrop": list(raw.get("cap_drop") or []),
        "Privileged": bool(raw.get("privileged")), "ReadonlyRootfs": bool(raw.get("read_only")),
        "Init": raw.get("init"), "ExtraHosts": _extra_hosts(raw.get("extra_hosts")),
        "Dns": list(raw.get("dns") or []), "DnsSearch": list(raw.get("dns_search") or []),
        "DnsOptions": list(raw.get("dns_opt") or []),
        "Sysctls": {str(k): str(v) for k, v in (raw.get("sysctls") or {}).items()},
        "Ulimits": _ulimits(raw.get("ulimits")), "SecurityOpt": list(raw.get("security_opt") or []),
        "GroupAdd": [str(g) for g in raw.get("group_add") or []],
        **_resources(raw),
    }
    if raw.get("runtime"):
        host_config["Runtime"] = raw["runtime"]
    logging = raw.get("logging")
    if logging:
        host_config["LogConfig"] = {"Type": logging.get("driver") or "",
                                    "Config": {str(k): str(v) for k, v in (logging.get("options") or {}).items()}}
    body: dict[str, Any] = {
        "Image": image_name(project, service),
        "Cmd": _command(options.command) if options.command is not None else _command(service.command),
        "Entrypoint": (_command(options.entrypoint) if options.entrypoint is not None
                       else _command(service.entrypoint)),
        "Env": [f"{k}={v}" for k, v in environment.items()],
        "Labels": dict(options.labels),
        "ExposedPorts": {key: {} for key in dict.fromkeys(exposed)},
        "Tty": bool(raw.get("tty")) if options.tty is None else options.tty,
        "OpenStdin": bool(raw.get("stdin_open")) if options.stdin_open is None else options.stdin_open,
        "HostConfig": host_config,
    }
    for key, option in (("Hostname", "hostname"), ("Domainname", "domainname"), ("User", "user"),
                       ("WorkingDir", "working_dir"), ("StopSignal", "stop_signal"), ("MacAddress", "mac_address")):
        if raw.get(option):
            body[key] = str(raw[option])
    if options.user:
        body["User"] = options.user
    if options.working_dir:
        body["WorkingDir"] = options.working_dir
    timeout = stop_timeout(service)
    if timeout is not None:
        body["StopTimeout"] = timeout
    check = healthcheck_body(service.healthcheck)
    if check is not None:
        body["Healthcheck"] = check
    if attachments and network_mode == attachments[0][0]:
        name, endpoint = attachments[0]
        body["NetworkingConfig"] = {"EndpointsConfig": {name: endpoint}}
    return body


def stop_timeout(service: ServiceConfig) -> int | None:
    """stop_grace_period in whole seconds, or None for the engine's default (10 s)."""
    grace = service.raw.get("stop_grace_period")
    if grace is None:
        return None
    return _seconds(parse_duration(grace))


def secondary_networks(project: Project, service: ServiceConfig) -> list[tuple[str, dict[str, Any]]]:
    """Networks connected after create (compose creates on the primary one, then connects the rest)."""
    if service.network_mode is not None:
        return []
    return network_attachments(project, service)[1:]


def network_create_body(network: Resource, labels: Mapping[str, str]) -> dict[str, Any]:
    raw = network.raw
    ipam = raw.get("ipam") or {}
    body: dict[str, Any] = {
        "Name": network.name, "Driver": raw.get("driver") or "bridge", "Labels": dict(labels),
        "Internal": bool(raw.get("internal")), "Attachable": bool(raw.get("attachable")),
        "EnableIPv6": bool(raw.get("enable_ipv6")),
        "Options": {str(k): str(v) for k, v in (raw.get("driver_opts") or {}).items()},
    }
    if ipam:
        body["IPAM"] = {"Driver": ipam.get("driver") or "default",
                        "Config": [{"Subnet" if k == "subnet" else "Gateway" if k == "gateway" else
                                    "IPRange" if k == "ip_range" else k: v for k, v in c.items()}
                                   for c in ipam.get("config") or []]}
    return body


def volume_create_body(volume: Resource, labels: Mapping[str, str]) -> dict[str, Any]:
    raw = volume.raw
    return {"Name": volume.name, "Driver": raw.get("driver") or "local", "Labels": dict(labels),
            "DriverOpts": {str(k): str(v) for k, v in (raw.get("driver_opts") or {}).items()}}
