"""Making a service's relative paths absolute against the directory they were written for."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_REMOTE = re.compile(r"^(https?://|git@|git://|github\.com/|ssh://)")


def is_bind_source(source: str) -> bool:
    """In short volume syntax, a source that looks like a path is a bind mount, else a volume name."""
    return source.startswith(("/", ".", "~")) or bool(re.match(r"^[a-zA-Z]:[\\/]", source))


def absolute(path: str, base: Path) -> str:
    """Expand `~` and make `path` absolute against `base`; remote build contexts stay as they are."""
    if _REMOTE.match(path):
        return path
    expanded = os.path.expanduser(path)
    return os.path.normpath(os.path.join(base, expanded))


def _short_volume(spec: str, base: Path) -> str:
    parts = spec.split(":")
    if len(parts) >= 2 and is_bind_source(parts[0]):
        parts[0] = absolute(parts[0], base)
    return ":".join(parts)


def _volume(item: Any, base: Path) -> Any:
    if isinstance(item, str):
        return _short_volume(item, base)
    if isinstance(item, dict) and item.get("type") == "bind" and isinstance(item.get("source"), str):
        return {**item, "source": absolute(item["source"], base)}
    return item


def _build(build: Any, base: Path) -> Any:
    if isinstance(build, str):
        return absolute(build, base)
    if isinstance(build, dict):
        return {**build, "context": absolute(str(build.get("context", ".")), base)}
    return build


def _env_files(value: Any, base: Path) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return value
    return [
        {**item, "path": absolute(str(item["path"]), base)} if isinstance(item, dict)
        else absolute(str(item), base)
        for item in items
    ]


def resolve_service_paths(service: dict[str, Any], base: Path) -> dict[str, Any]:
    """Return a copy of `service` whose relative paths are made absolute against `base`."""
    resolved = dict(service)
    if "build" in resolved:
        resolved["build"] = _build(resolved["build"], base)
    for key in ("env_file", "label_file"):
        if key in resolved:
            resolved[key] = _env_files(resolved[key], base)
    if isinstance(resolved.get("volumes"), list):
        resolved["volumes"] = [_volume(v, base) for v in resolved["volumes"]]
    extends = resolved.get("extends")
    if isinstance(extends, dict) and "file" in extends:
        resolved["extends"] = {**extends, "file": absolute(str(extends["file"]), base)}
    return resolved


def resolve_document_paths(document: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve every path of a whole file (services, and `file:` of secrets and configs)."""
    resolved = dict(document)
    services = resolved.get("services")
    if isinstance(services, dict):
        resolved["services"] = {
            name: resolve_service_paths(svc, base) if isinstance(svc, dict) else svc
            for name, svc in services.items()
        }
    for section in ("secrets", "configs"):
        entries = resolved.get(section)
        if isinstance(entries, dict):
            resolved[section] = {
                name: {**e, "file": absolute(str(e["file"]), base)} if isinstance(e, dict) and "file" in e
                else e
                for name, e in entries.items()
            }
    return resolved
