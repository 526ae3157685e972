"""`load_project`: from command-line options to a validated, normalised `Project`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compose.loader.checks import check_project
from compose.loader.documents import DocumentContext, display_name, load_document
from compose.loader.errors import Issue, LoadError
from compose.loader.files import choose_project_name, load_environment, resolve_config_files
from compose.loader.merge import merge_documents
from compose.loader.normalize import NormalizeContext, normalize_document
from compose.model import Project, ServiceConfig, build_resources, build_service


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """What the command line says about where and how to load the project."""

    files: tuple[str | Path, ...] = ()
    project_name: str | None = None
    project_directory: str | Path | None = None
    env_files: tuple[str | Path, ...] = ()
    profiles: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # named on the command line: enabled whatever their profiles
    cwd: Path | None = None  # default: the process's current directory
    environ: Mapping[str, str] | None = None  # default: os.environ
    interpolate: bool = True


def active_profiles(options: LoadOptions, environ: Mapping[str, str]) -> set[str]:
    if options.profiles:
        return set(options.profiles)
    return {p.strip() for p in environ.get("COMPOSE_PROFILES", "").split(",") if p.strip()}


def _is_enabled(service: Mapping[str, Any], profiles: set[str]) -> bool:
    wanted = service.get("profiles") or []
    return not wanted or "*" in profiles or bool(profiles & set(wanted))


def _dependencies(service: Mapping[str, Any]) -> list[str]:
    deps = service.get("depends_on") or {}
    return list(deps) if isinstance(deps, Mapping) else [str(d) for d in deps]


def select_services(
    services: Mapping[str, Any], *, profiles: set[str], targets: Sequence[str]
) -> tuple[set[str], list[Issue]]:
    """Services on for the profiles, plus targets and their dependencies (as compose enables them)."""
    enabled = {name for name, svc in services.items() if _is_enabled(svc or {}, profiles)}
    issues = [Issue(file="", path="", message=f'no such service: "{t}"') for t in targets if t not in services]
    pending = [t for t in targets if t in services]
    while pending:
        name = pending.pop()
        if name in enabled and name not in targets:
            continue
        enabled.add(name)
        pending += [d for d in _dependencies(services[name] or {}) if d in services and d not in enabled]
    return enabled, issues


def _drop_disabled(document: dict[str, Any], enabled: set[str], origins: Mapping[str, str]) -> list[Issue]:
    """Remove disabled services; an enabled one that requires a disabled one is an error."""
    services = document["services"]
    issues = []
    for name in sorted(enabled):
        for dep, spec in list((services[name].get("depends_on") or {}).items()):
            if dep in services and dep not in enabled:
                if spec["required"]:
                    issues.append(Issue(file=origins.get(name, ""), path=f"services.{name}.depends_on.{dep}",
                                        message=f'service "{dep}" is disabled by its profiles; enable one '
                                        "of them with --profile"))
                del services[name]["depends_on"][dep]
        if services[name].get("depends_on") == {}:
            del services[name]["depends_on"]
    document["services"] = {n: s for n, s in services.items() if n in enabled}
    return issues


def _drop_optional_missing(document: dict[str, Any], warnings: list[str]) -> None:
    """`required: false` dependencies on services that don't exist are dropped, with a warning."""
    services = document["services"]
    for name, svc in services.items():
        for dep, spec in list((svc.get("depends_on") or {}).items()):
            if dep not in services and not spec["required"]:
                warnings.append(f'service "{name}": optional dependency "{dep}" is not defined; ignored')
                del svc["depends_on"][dep]
        if svc.get("depends_on") == {}:
            del svc["depends_on"]


def _all_profiles(services: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted({p for svc in services.values() for p in (svc or {}).get("profiles") or []}))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Setting:
    cwd: Path
    files: list[Path]
    project_dir: Path
    environ: dict[str, str]


def _setting(options: LoadOptions) -> _Setting:
    cwd = (options.cwd or Path.cwd()).resolve()
    shell = dict(os.environ if options.environ is None else options.environ)
    explicit_dir = Path(os.path.normpath(cwd / options.project_directory)) if options.project_directory else None
    files = resolve_config_files(options.files, cwd=cwd, environ=shell, project_directory=explicit_dir)
    project_dir = explicit_dir or files[0].parent
    environ = load_environment(shell=shell, env_files=options.env_files, cwd=cwd, project_dir=project_dir)
    return _Setting(cwd=cwd, files=files, project_dir=project_dir, environ=environ)


def load_project(options: LoadOptions) -> Project:
    """Load, merge, interpolate, validate and normalise; raise LoadError listing every problem."""
    setting = _setting(options)
    ctx = DocumentContext(cwd=setting.cwd, environ=setting.environ, interpolate=options.interpolate)
    merged = merge_documents([load_document(path, ctx) for path in setting.files])
    first = display_name(setting.files[0], setting.cwd)
    name = choose_project_name(explicit=options.project_name, environ=setting.environ,
                               declared=merged.get("name"), project_dir=setting.project_dir, file=first)
    services = merged.get("services") or {}
    enabled, issues = select_services(services, profiles=active_profiles(options, setting.environ),
                                      targets=options.services)
    norm = NormalizeContext(project_name=name, working_dir=setting.project_dir, environ=setting.environ,
                            origins=ctx.origins)
    document = normalize_document(merged, norm)
    issues += norm.issues + _drop_disabled(document, enabled, ctx.origins)
    _drop_optional_missing(document, ctx.warnings)
    issues += check_project(document, ctx.origins)
    if issues:
        raise LoadError(issues)
    return _build_project(document, setting=setting, disabled=sorted(set(services) - enabled),
                          profiles=_all_profiles(services), warnings=ctx.warnings)


def _build_project(
    document: dict[str, Any], *, setting: _Setting, disabled: list[str], profiles: tuple[str, ...],
    warnings: list[str],
) -> Project:
    services: dict[str, ServiceConfig] = {n: build_service(n, s) for n, s in document["services"].items()}
    return Project(
        name=document["name"], working_dir=setting.project_dir, config_files=tuple(setting.files),
        services=services, networks=build_resources(document.get("networks")),
        volumes=build_resources(document.get("volumes")), secrets=build_resources(document.get("secrets")),
        configs=build_resources(document.get("configs")), raw=document, disabled_services=tuple(disabled),
        profiles=profiles, warnings=tuple(dict.fromkeys(warnings)),
    )
