"""Turning a merged Compose document into the long syntax `docker compose config` prints."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose.loader.durations import format_duration, parse_duration
from compose.loader.envfile import read_env_file
from compose.loader.errors import Issue, LoadError
from compose.loader.paths import absolute, is_bind_source, resolve_document_paths

_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_DURATION_KEYS = ("interval", "timeout", "start_period", "start_interval")


@dataclass(slots=True, kw_only=True)
class NormalizeContext:
    project_name: str
    working_dir: Path
    environ: Mapping[str, str]
    origins: Mapping[str, str] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def fail(self, service: str, path: str, message: str) -> None:
        where = f"services.{service}.{path}" if path else f"services.{service}"
        self.issues.append(Issue(file=self.origins.get(service, ""), path=where, message=message))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _key_values(value: Any) -> dict[str, str | None]:
    """`[A=1, B]` or `{A: 1, B: null}` -> {'A': '1', 'B': None}."""
    if isinstance(value, dict):
        return {str(k): _text(v) for k, v in value.items()}
    result: dict[str, str | None] = {}
    for item in _as_list(value):
        key, sep, val = str(item).partition("=")
        result[key] = val if sep else None
    return result


def _command(value: Any) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


# ---- ports -----------------------------------------------------------------------------------

def _port_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    start, end = int(first), int(last or first)
    if not 0 < start <= end <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return list(range(start, end + 1))


def _split_short_port(spec: str) -> tuple[str, str, str, str]:
    protocol = "tcp"
    if "/" in spec:
        spec, protocol = spec.rsplit("/", 1)
    host_ip = ""
    if spec.startswith("["):
        end = spec.index("]")
        host_ip, spec = spec[1:end], spec[end + 2 :]
        published, _, target = spec.rpartition(":")
        return host_ip, published, target, protocol
    parts = spec.split(":")
    if len(parts) > 3:
        raise ValueError(f"invalid port {spec!r}")
    parts = ["", "", *parts][-3:]
    return parts[0], parts[1], parts[2], protocol


def _port_entry(*, target: int, published: str | None, host_ip: str, protocol: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"mode": "ingress"}
    if host_ip:
        entry["host_ip"] = host_ip
    entry["target"] = target
    if published:
        entry["published"] = published
    entry["protocol"] = protocol
    return entry


def normalize_port(spec: Any) -> list[dict[str, Any]]:
    """One short or long port definition -> long entries, ranges expanded. ValueError if invalid."""
    if isinstance(spec, dict):
        entry = _port_entry(target=int(spec["target"]), published=_text(spec.get("published")),
                            host_ip=str(spec.get("host_ip", "")), protocol=str(spec.get("protocol", "tcp")))
        entry["mode"] = spec.get("mode", "ingress")
        entry.update({k: spec[k] for k in ("name", "app_protocol") if k in spec})
        return [entry]
    host_ip, published, target, protocol = _split_short_port(str(spec))
    if protocol not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid protocol {protocol!r}")
    targets = _port_range(target)
    hosts = _port_range(published) if published else []
    if hosts and len(hosts) != len(targets):
        if len(targets) != 1:
            raise ValueError(f"port ranges {published!r} and {target!r} differ in length")
        return [_port_entry(target=targets[0], published=published, host_ip=host_ip, protocol=protocol)]
    return [
        _port_entry(target=t, published=str(hosts[i]) if hosts else None, host_ip=host_ip, protocol=protocol)
        for i, t in enumerate(targets)
    ]


# ---- volumes ---------------------------------------------------------------------------------

def _short_volume(spec: str, base: Path) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0], "volume": {}}
    if len(parts) > 3:
        raise ValueError(f"invalid volume specification {spec!r}")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    if is_bind_source(source):
        entry: dict[str, Any] = {"type": "bind", "source": absolute(source, base), "target": target}
        bind: dict[str, Any] = {"create_host_path": True}
        for option in options:
            if option in _PROPAGATION:
                bind["propagation"] = option
            elif option in ("z", "Z"):
                bind["selinux"] = option
        entry["bind"] = bind
    else:
        entry = {"type": "volume", "source": source, "target": target,
                 "volume": {"nocopy": True} if "nocopy" in options else {}}
    if "ro" in options:
        entry["read_only"] = True
    return entry


def normalize_volume(spec: Any, base: Path) -> dict[str, Any]:
    if isinstance(spec, str):
        return _short_volume(spec, base)
    entry = dict(spec)
    if entry.get("type") == "bind" and "source" in entry:
        entry["source"] = absolute(str(entry["source"]), base)
    if entry.get("type") == "volume":
        entry.setdefault("volume", {})
    return entry


# ---- services --------------------------------------------------------------------------------

def _environment(svc: dict[str, Any], ctx: NormalizeContext, name: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    for item in _as_list(svc.get("env_file")):
        path, required = (item["path"], item.get("required", True)) if isinstance(item, dict) else (item, True)
        file = Path(absolute(str(path), ctx.working_dir))
        if not file.exists():
            if required:
                ctx.fail(name, "env_file", f"env file {file} not found")
            continue
        try:
            env.update(read_env_file(file, environ=ctx.environ))
        except LoadError as exc:
            ctx.issues.extend(exc.issues)
    for key, value in _key_values(svc.get("environment")).items():
        env[key] = value if value is not None else ctx.environ.get(key)
    return env


def _depends_on(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw = svc.get("depends_on") or {}
    names = raw if isinstance(raw, dict) else {n: None for n in raw}
    result: dict[str, dict[str, Any]] = {}
    for dep, spec in names.items():
        spec = spec or {}
        result[str(dep)] = {"condition": spec.get("condition", "service_started"),
                            "restart": bool(spec.get("restart", False)),
                            "required": bool(spec.get("required", True))}
    implied = [str(link).split(":")[0] for link in svc.get("links") or []]
    mode = str(svc.get("network_mode", ""))
    implied += [mode.split(":", 1)[1]] if mode.startswith("service:") else []
    implied += [str(v).split(":")[0] for v in svc.get("volumes_from") or [] if not str(v).startswith("container:")]
    for dep in implied:
        result.setdefault(dep, {"condition": "service_started", "restart": True, "required": True})
    return result


def _networks(svc: dict[str, Any]) -> dict[str, Any] | None:
    if "network_mode" in svc:
        return None
    raw = svc.get("networks")
    if not raw:
        return {"default": None}
    if isinstance(raw, list):
        return {str(n): None for n in raw}
    return {str(k): (dict(v) if v else None) for k, v in raw.items()}


def _healthcheck(raw: dict[str, Any]) -> dict[str, Any]:
    check = dict(raw)
    if check.get("disable"):
        check["test"] = ["NONE"]
    test = check.get("test")
    if isinstance(test, str):
        check["test"] = ["CMD-SHELL", test]
    for key in _DURATION_KEYS:
        if key in check:
            check[key] = format_duration(parse_duration(check[key]))
    return check


def _file_refs(items: Any, default_dir: str) -> list[dict[str, Any]]:
    refs = []
    for item in items or []:
        ref = {"source": item} if isinstance(item, str) else dict(item)
        target = str(ref.get("target") or ref["source"])
        ref["target"] = target if target.startswith("/") else f"{default_dir}/{target}"
        refs.append(ref)
    return refs


def _build(build: Any, base: Path) -> dict[str, Any]:
    spec = {"context": build} if isinstance(build, str) else dict(build)
    spec["context"] = absolute(str(spec.get("context", ".")), base)
    if "dockerfile_inline" not in spec:
        spec.setdefault("dockerfile", "Dockerfile")
    for key in ("args", "labels", "additional_contexts"):
        if key in spec:
            spec[key] = _key_values(spec[key])
    if "secrets" in spec:  # long syntax; the id a Dockerfile uses is the target, else the source
        spec["secrets"] = [{"source": ref} if isinstance(ref, str) else dict(ref) for ref in spec["secrets"]]
    return spec


def _extra_hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{host}={ip}" for host, ips in value.items() for ip in _as_list(ips)]
    return [_host_entry(str(v)) for v in value]


def _host_entry(entry: str) -> str:
    """'host:ip' (the old form) and 'host=ip' both become 'host=ip', as compose prints them."""
    if "=" in entry:
        return entry
    host, _, address = entry.partition(":")
    return f"{host}={address}"


def _expand_ports(svc: dict[str, Any], ctx: NormalizeContext, name: str) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for i, spec in enumerate(svc.get("ports") or []):
        try:
            ports.extend(normalize_port(spec))
        except (ValueError, KeyError) as exc:
            ctx.fail(name, f"ports[{i}]", str(exc))
    return ports


def _expand_volumes(svc: dict[str, Any], ctx: NormalizeContext, name: str) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    for i, spec in enumerate(svc.get("volumes") or []):
        try:
            volumes.append(normalize_volume(spec, ctx.working_dir))
        except ValueError as exc:
            ctx.fail(name, f"volumes[{i}]", str(exc))
    return volumes


def _strings(value: Any) -> list[str]:
    return [str(v) for v in _as_list(value)]


def _duration(value: Any) -> str:
    return format_duration(parse_duration(value))


def _secret_refs(value: Any) -> list[dict[str, Any]]:
    return _file_refs(value, "/run/secrets")


def _config_refs(value: Any) -> list[dict[str, Any]]:
    return _file_refs(value, "")


# Fields whose long form depends only on their own value.
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "command": _command, "entrypoint": _command,
    "labels": _key_values, "annotations": _key_values, "sysctls": _key_values,
    "dns": _strings, "dns_search": _strings, "tmpfs": _strings, "expose": _strings,
    "extra_hosts": _extra_hosts, "stop_grace_period": _duration,
    "secrets": _secret_refs, "configs": _config_refs,
}
# Fields rebuilt from the whole service (or dropped once used).
_DERIVED = ("env_file", "extends", "depends_on", "networks")


def _contextual_fields(name: str, svc: dict[str, Any], ctx: NormalizeContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "build" in svc:
        out["build"] = _build(svc["build"], ctx.working_dir)
    if "environment" in svc or "env_file" in svc:
        out["environment"] = _environment(svc, ctx, name)
    if "ports" in svc:
        out["ports"] = _expand_ports(svc, ctx, name)
    if "volumes" in svc:
        out["volumes"] = _expand_volumes(svc, ctx, name)
    if "healthcheck" in svc:
        try:
            out["healthcheck"] = _healthcheck(svc["healthcheck"])
        except ValueError as exc:
            ctx.fail(name, "healthcheck", str(exc))
    if depends_on := _depends_on(svc):
        out["depends_on"] = depends_on
    if (networks := _networks(svc)) is not None:
        out["networks"] = networks
    return out


def normalize_service(name: str, svc: dict[str, Any], ctx: NormalizeContext) -> dict[str, Any]:
    """Long syntax for one service, keys sorted as compose prints them; problems go to ctx.issues."""
    out = {k: v for k, v in svc.items() if k not in _DERIVED}
    out.update({key: convert(svc[key]) for key, convert in _FIELDS.items() if key in svc})
    out.update(_contextual_fields(name, svc, ctx))
    return dict(sorted(out.items()))


# ---- top-level resources ---------------------------------------------------------------------

def _external_name(key: str, spec: dict[str, Any]) -> str:
    external = spec.get("external")
    if isinstance(external, dict) and "name" in external:
        return str(external["name"])
    return str(spec.get("name", key))


def normalize_resource(key: str, spec: Any, project: str) -> dict[str, Any]:
    """Networks, volumes, secrets, configs: full name (`<project>_<key>` unless set or external)."""
    resource = dict(spec or {})
    if resource.get("external"):
        resource["name"] = _external_name(key, resource)
        resource["external"] = True
    else:
        resource.setdefault("name", f"{project}_{key}")
    if "labels" in resource:
        resource["labels"] = _key_values(resource["labels"])
    return dict(sorted(resource.items(), key=lambda kv: kv[0] != "name"))


def _used_networks(services: dict[str, dict[str, Any]]) -> set[str]:
    return {net for svc in services.values() for net in (svc.get("networks") or {})}


def normalize_document(document: dict[str, Any], ctx: NormalizeContext) -> dict[str, Any]:
    """The whole project in long syntax, keyed as `docker compose config` prints it."""
    resolved = resolve_document_paths(document, ctx.working_dir)
    services = {name: normalize_service(name, dict(svc or {}), ctx)
                for name, svc in sorted((resolved.get("services") or {}).items())}
    networks = dict(resolved.get("networks") or {})
    if "default" in _used_networks(services):
        networks.setdefault("default", None)
    result: dict[str, Any] = {"name": ctx.project_name, "services": services}
    for section, entries in (("networks", networks), ("volumes", resolved.get("volumes")),
                             ("secrets", resolved.get("secrets")), ("configs", resolved.get("configs"))):
        if entries:
            result[section] = {k: normalize_resource(k, v, ctx.project_name) for k, v in sorted(entries.items())}
    result.update({k: v for k, v in resolved.items() if k.startswith("x-")})
    return result


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtb]?)b?$", re.IGNORECASE)


def parse_bytes(value: str | int) -> int:
    """'512m' -> 536870912 (Docker's RAMInBytes units: b, k, m, g, t, powers of 1024)."""
    if isinstance(value, int):
        return value
    match = _MEMORY.match(value.strip())
    if not match:
        raise ValueError(f"invalid size {value!r}")
    power = " bkmgt".index(match.group(2).lower() or "b") - 1
    return int(float(match.group(1)) * 1024**power)
