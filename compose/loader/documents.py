"""Reading one Compose file: parse, interpolate, validate, then resolve `include` and `extends`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compose.loader.envfile import read_env_file
from compose.loader.errors import LoadError
from compose.loader.interpolate import interpolate_tree
from compose.loader.merge import merge_documents, merge_values
from compose.loader.paths import resolve_document_paths, resolve_service_paths
from compose.loader.schema import validate_document
from compose.loader.yamlio import read_yaml_file, strip_markers

_SECTIONS = ("services", "networks", "volumes", "secrets", "configs")


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentContext:
    cwd: Path
    environ: Mapping[str, str]
    interpolate: bool = True
    warnings: list[str] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # service -> file that first defined it
    include_chain: tuple[Path, ...] = ()


def display_name(path: Path, cwd: Path) -> str:
    """How errors name a file: relative to the current directory when inside it."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def read_document(path: Path, ctx: DocumentContext) -> dict[str, Any]:
    """Parse, interpolate and validate one file (markers kept for merging)."""
    name = display_name(path, ctx.cwd)
    document = read_yaml_file(path, display=name)
    if ctx.interpolate:
        document = interpolate_tree(document, file=name, lookup=ctx.environ.get, warnings=ctx.warnings)
    validate_document(strip_markers(document), file=name)
    if "version" in document:
        ctx.warnings.append(f"{name}: the attribute `version` is obsolete, it will be ignored")
    return document


def load_document(path: Path, ctx: DocumentContext) -> dict[str, Any]:
    """One file with its includes imported and its `extends` resolved."""
    document = read_document(path, ctx)
    name = display_name(path, ctx.cwd)
    for service in document.get("services") or {}:
        ctx.origins.setdefault(service, name)
    document = _apply_includes(document, path, ctx)
    return _resolve_all_extends(document, path, ctx)


# ---- include ---------------------------------------------------------------------------------

def _include_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for entry in document.get("include") or []:
        spec = {"path": entry} if isinstance(entry, str) else dict(entry)
        spec["path"] = [spec["path"]] if isinstance(spec["path"], str) else list(spec["path"])
        entries.append(spec)
    return entries


def _include_environment(
    spec: dict[str, Any], *, including: Path, project_dir: Path, ctx: DocumentContext
) -> dict[str, str]:
    """The included file's own env files (relative to the including file), else its `.env`."""
    env_files = spec.get("env_file")
    names = [env_files] if isinstance(env_files, str) else list(env_files or [])
    paths = [including.parent / n for n in names] if names else [project_dir / ".env"]
    values: dict[str, str] = {}
    for env_path in paths:
        if env_path.is_file() or names:
            values.update(read_env_file(env_path, environ=ctx.environ))
    return {**values, **ctx.environ}


def _load_included(spec: dict[str, Any], including: Path, ctx: DocumentContext) -> dict[str, Any]:
    paths = [Path(os.path.normpath(including.parent / p)) for p in spec["path"]]
    project_dir = Path(os.path.normpath(including.parent / spec.get("project_directory", paths[0].parent)))
    chain = (*ctx.include_chain, including)
    for path in paths:
        if path in chain:
            cycle = " -> ".join(display_name(p, ctx.cwd) for p in (*chain[chain.index(path):], path))
            raise LoadError.at(display_name(including, ctx.cwd), "include", f"include cycle detected: {cycle}")
        if not path.is_file():
            raise LoadError.at(display_name(including, ctx.cwd), "include", f"included file {path} not found")
    environ = _include_environment(spec, including=including, project_dir=project_dir, ctx=ctx)
    sub = replace(ctx, environ=environ, include_chain=chain, origins={})
    merged = merge_documents([load_document(p, sub) for p in paths])
    for service in merged.get("services") or {}:
        ctx.origins.setdefault(service, sub.origins.get(service, display_name(paths[0], ctx.cwd)))
    return resolve_document_paths(merged, project_dir)


def _apply_includes(document: dict[str, Any], path: Path, ctx: DocumentContext) -> dict[str, Any]:
    result = {k: v for k, v in document.items() if k != "include"}
    for spec in _include_entries(document):
        included = _load_included(spec, path, ctx)
        for section in _SECTIONS:
            mine = dict(result.get(section) or {})
            for key, value in (included.get(section) or {}).items():
                if key in mine and strip_markers(mine[key]) != value:
                    raise LoadError.at(display_name(path, ctx.cwd), f"{section}.{key}",
                                       f"conflicts with the definition imported from {spec['path'][0]}")
                mine[key] = value
            if mine:
                result[section] = mine
    return result


# ---- extends ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class _Extending:
    ctx: DocumentContext
    chain: tuple[tuple[Path, str], ...] = ()


def _base_of(service: dict[str, Any], path: Path) -> tuple[Path, str]:
    spec = service["extends"]
    if isinstance(spec, str):
        return path, spec
    base_file = spec.get("file")
    base_path = Path(os.path.normpath(path.parent / base_file)) if base_file else path
    return base_path, spec["service"]


def _extended(name: str, services: dict[str, Any], path: Path, state: _Extending) -> dict[str, Any]:
    service = dict(services[name] or {})
    if "extends" not in service:
        return service
    file = display_name(path, state.ctx.cwd)
    base_path, base_name = _base_of(service, path)
    if (base_path, base_name) in state.chain or (base_path, base_name) == (path, name):
        raise LoadError.at(file, f"services.{name}.extends", f"circular reference to service {base_name!r}")
    base_services = services if base_path == path else _services_of(base_path, state.ctx, file, name)
    if base_name not in base_services:
        where = display_name(base_path, state.ctx.cwd)
        raise LoadError.at(file, f"services.{name}.extends", f"service {base_name!r} not found in {where}")
    deeper = replace(state, chain=(*state.chain, (path, name)))
    base = _extended(base_name, base_services, base_path, deeper)
    if base_path != path:
        base = resolve_service_paths(base, base_path.parent)
    own = {k: v for k, v in service.items() if k != "extends"}
    merged: dict[str, Any] = merge_values(base, own, ("services", name))
    return merged


def _services_of(path: Path, ctx: DocumentContext, file: str, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise LoadError.at(file, f"services.{name}.extends", f"file {path} not found")
    services: dict[str, Any] = read_document(path, ctx).get("services") or {}
    return services


def _resolve_all_extends(document: dict[str, Any], path: Path, ctx: DocumentContext) -> dict[str, Any]:
    services = document.get("services")
    if not isinstance(services, dict):
        return document
    state = _Extending(ctx=ctx)
    resolved = {name: _extended(name, services, path, state) for name in services}
    return {**document, "services": resolved}
