"""Daemon configuration: command-line flags over /etc/pynode/daemon.json over defaults (dockerd's key names)."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node.errors import InvalidArgument

DEFAULT_CONFIG_FILE = Path("/etc/pynode/daemon.json")
DEFAULT_DATA_ROOT = Path("/var/lib/pynode")
DEFAULT_EXEC_ROOT = Path("/run/pynode")
DEFAULT_HOST = "unix:///run/pynode/pynode.sock"

# daemon.json keys we understand; anything else is refused so a typo is not silently ignored.
_KNOWN_KEYS = {
    "data-root", "exec-root", "hosts", "storage-driver", "default-runtime", "runtimes", "log-driver",
    "log-opts", "bip", "default-address-pools", "dns", "live-restore", "debug", "nft-table", "labels",
    "pidfile", "log-level", "insecure-registries",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    data_root: Path = DEFAULT_DATA_ROOT
    exec_root: Path = DEFAULT_EXEC_ROOT
    host: str = DEFAULT_HOST
    pidfile: Path | None = None
    storage_driver: str = "overlay2"
    default_runtime: str = "crun"
    runtimes: dict[str, str] = field(default_factory=dict)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    bip: str | None = None
    default_address_pools: tuple[dict[str, Any], ...] = ()
    dns: tuple[str, ...] = ()
    live_restore: bool = True
    debug: bool = False
    nft_table: str = "pynode"
    labels: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()  # host[:port] or CIDR: pulls may use plain http (or unverified TLS)

    @property
    def socket_path(self) -> Path:
        return socket_path_of(self.host)

    @property
    def pid_path(self) -> Path:
        return self.pidfile or self.exec_root / "pynode.pid"


def socket_path_of(host: str) -> Path:
    """`unix:///run/x.sock` (or a bare path) -> Path; anything else is refused with the value named."""
    if host.startswith("unix://"):
        return Path(host[len("unix://"):])
    if host.startswith("/"):
        return Path(host)
    raise InvalidArgument(f"host {host!r}: only unix:// sockets are supported by the engine")


def resolve_host(explicit: str | None) -> str:
    """-H beats PYNODE_HOST beats the default socket."""
    return explicit or os.environ.get("PYNODE_HOST") or DEFAULT_HOST


def load_daemon_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a JSON object")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise InvalidArgument(f"{path}: unknown key {unknown[0]!r}")
    return data


def build_config(*, config_file: Path, overrides: dict[str, Any]) -> DaemonConfig:
    """Merge daemon.json with flags; `overrides` holds only flags the user gave (None values dropped)."""
    data = load_daemon_json(config_file)
    cfg = DaemonConfig()
    mapping: dict[str, tuple[str, Callable[[Any], Any]]] = {
        "data-root": ("data_root", Path), "exec-root": ("exec_root", Path), "pidfile": ("pidfile", Path),
        "storage-driver": ("storage_driver", str), "default-runtime": ("default_runtime", str),
        "runtimes": ("runtimes", _runtime_paths), "log-driver": ("log_driver", str),
        "log-opts": ("log_opts", dict), "bip": ("bip", str),
        "default-address-pools": ("default_address_pools", tuple), "dns": ("dns", tuple),
        "live-restore": ("live_restore", bool), "debug": ("debug", bool), "nft-table": ("nft_table", str),
        "labels": ("labels", tuple), "insecure-registries": ("insecure_registries", _registry_entries),
    }
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key == "hosts":
            if raw:
                values["host"] = raw[0]
            continue
        if key in mapping:
            attr, conv = mapping[key]
            values[attr] = conv(raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = replace(cfg, **values)
    if cfg.storage_driver != "overlay2":
        raise InvalidArgument(f"storage-driver {cfg.storage_driver!r}: only overlay2 is supported")
    return cfg


def _runtime_paths(raw: dict[str, Any]) -> dict[str, str]:
    return {name: (spec["path"] if isinstance(spec, dict) else str(spec)) for name, spec in raw.items()}


def _registry_entries(raw: Any) -> tuple[str, ...]:
    """`insecure-registries`: a list of `host[:port]` or CIDR strings, as dockerd takes them."""
    if not isinstance(raw, list) or not all(isinstance(item, str) and item.strip() for item in raw):
        raise InvalidArgument("insecure-registries: expected a list of host[:port] or CIDR strings")
    entries = tuple(item.strip() for item in raw)
    for item in entries:
        if "://" in item:
            raise InvalidArgument(f"insecure-registries: {item!r} should not contain '://' (give host[:port])")
        if "/" in item and not _is_cidr(item):
            raise InvalidArgument(f"insecure-registries: {item!r} is neither host[:port] nor a CIDR")
    return entries


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
