"""`stack deploy`'s pure core: a compose project, loaded by compose's own loader, becomes a StackDeployment.

`load_stack` loads the files as pycompose does, with the stack's name as the project name, so every
resource comes out `<stack>_<key>`; `read_contents` reads the content of the stack's own secrets and
configs (the only function here that reads files); `map_project` maps the project without any I/O and
raises `StackError` listing every key the cluster can't honour, all at once.

Docker's `docker stack deploy` (docker/cli, cli/compose/convert) is the reference. Where we differ, and why:

- What Swarm ignores and pycompose honours, we honour too, so that a file means the same on one host and on
  the cluster (DESIGN.md): `depends_on` conditions (ServiceSpec.depends_on), `restart:` when there is no
  deploy.restart_policy, `tmpfs:` (tmpfs mounts), `cpus`/`mem_limit`/`mem_reservation` (resources, as
  pycompose reads them; deploy.resources wins where both are set), secrets and configs from `environment:`
  and `content:` (Docker reads `file:` only).
- `restart: "no"` means never restart (condition none). Docker maps it to no policy at all, that is to
  Swarm's default (any), which restarts what the file says must not be restarted.
- Where Docker prints "Ignoring unsupported options" and deploys anyway (container_name, privileged,
  links, ...), we refuse: one issue per key and service, so that nothing the file asks for is silently lost.
  A key set to its no-op value (`privileged: false`, `cap_add: []`) asks for nothing and passes.
  Keys that mean nothing on a cluster (`expose`, `attach`, `develop`, a port's `app_protocol`) only warn.
- `depends_on.<x>.restart: true` is an issue: the cluster does not restart a service's tasks when a
  dependency is updated or restarted, and a silent difference in restarts is the kind that bites later.
- A partial update_config/rollback_config keeps our defaults for what it leaves out (monitor 5 s, as when
  the section is absent); Docker's conversion zeroes them (monitor 0 s) only when the section is present.
- A network's ipam gateway/ip_range/aux_addresses, a mount's propagation or nocopy, a port's host_ip or a
  published range: Docker drops them silently or fails later in the daemon; we report them here.
- A config may hold 1000 KB, a secret 500 KB: swarmkit's MaxConfigSize and MaxSecretSize.
- As Docker does: services `<stack>_<service>`; env sorted; the service's own name an alias on each of
  its networks; attachments sorted by network name, secrets and configs by name; `com.docker.stack.image`
  (the image the file names) on the service's labels, not the container's; only networks some service
  uses are created; every declared (not external) secret and config is created, used or not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from compose.container_spec import SpecError, parse_size
from compose.loader import LoadError, LoadOptions, load_project
from compose.loader.durations import parse_duration
from compose.model import Project, Resource, ServiceConfig, VolumeMount
from orchestrator.errors import OrchestratorError
from orchestrator.model import (
    MAX_CONFIG_SIZE,
    MAX_SECRET_SIZE,
    ContainerSpec,
    DependencyCondition,
    EndpointMode,
    EndpointSpec,
    FailureAction,
    FileReference,
    HealthConfig,
    Mount,
    MountType,
    NetworkAttachmentConfig,
    NetworkSpec,
    Placement,
    PlacementPreference,
    PortConfig,
    PortProtocol,
    PublishMode,
    ResourceRequirements,
    Resources,
    RestartCondition,
    RestartPolicy,
    SecretSpec,
    ServiceDependency,
    ServiceMode,
    ServiceSpec,
    StackSpec,
    TaskSpec,
    UpdateConfig,
    UpdateOrder,
)
from orchestrator.scheduler.constraint import parse_constraint, parse_spread
from orchestrator.stacks.errors import StackError
from orchestrator.stacks.model import IMAGE_LABEL, NAMESPACE_LABEL, StackDeployment

T = TypeVar("T")

SECRETS_DIR = "/run/secrets"

# Every service key the mapping reads (or that the loader or the caller has dealt with); anything else,
# but `x-*` extensions and IGNORED_SERVICE_KEYS, is an issue.
SUPPORTED_SERVICE_KEYS: frozenset[str] = frozenset({
    "image", "build", "command", "entrypoint", "environment", "env_file", "labels", "hostname", "user",
    "working_dir", "stop_grace_period", "healthcheck", "volumes", "tmpfs", "read_only", "ports", "networks",
    "deploy", "scale", "restart", "depends_on", "secrets", "configs", "profiles", "extends", "pull_policy",
    "cpus", "mem_limit", "mem_reservation",
    "init",  # `init: true` is what the cluster does anyway: every task runs under an init (catatonit/tini)
})
# Keys that mean nothing on a cluster: deployed with a warning.
IGNORED_SERVICE_KEYS: Mapping[str, str] = {
    "expose": "ignored: a task's ports are reachable by every service on its networks",
    "attach": "ignored: `stack deploy` attaches to no container's output",
    "develop": "ignored: `develop` (watch) is for pycompose on one host",
}
_REASONS: Mapping[str, str] = {
    "container_name": "the cluster names each task's container itself (<service>.<slot>.<task id>)",
    "network_mode": "tasks join the stack's overlay networks; use `networks:`",
    "links": "services reach each other by name on their shared networks; use `networks:`",
    "external_links": "services reach each other by name on their shared networks; use `networks:`",
    "volumes_from": "a service's tasks may run on other nodes than the containers they would share with",
    "label_file": "not read by the loader; write the labels under `labels:`",
}
_WILDCARD_IPS = ("", "0.0.0.0", "::")
_NOT_USER_DEFINED = ("host", "bridge", "none")  # networks without aliases, as Docker decides
_CONDITIONS = {"none": RestartCondition.NONE, "on-failure": RestartCondition.ON_FAILURE,
               "any": RestartCondition.ANY}
_FAILURE_ACTIONS = {a.value: a for a in FailureAction}
_ORDERS = {"stop-first": UpdateOrder.STOP_FIRST, "start-first": UpdateOrder.START_FIRST}
_PROTOCOLS = {p.value: p for p in PortProtocol}
_PUBLISH_MODES = {m.value: m for m in PublishMode}
_ENDPOINT_MODES = {m.value: m for m in EndpointMode}


# --- loading and reading -----------------------------------------------------------------------


def load_stack(
    *, stack: str, files: Sequence[Path], env_files: Sequence[Path] = (), profiles: Sequence[str] = (),
    environ: Mapping[str, str], working_dir: Path | None = None,
) -> Project:
    """Load the compose files as pycompose does (interpolation, .env, profiles, extends, include), with the
    stack's name as the project's. `working_dir` is the project directory (default: the first file's)."""
    options = LoadOptions(files=tuple(files), project_name=stack, project_directory=working_dir,
                          env_files=tuple(env_files), profiles=tuple(profiles), environ=dict(environ))
    try:
        return load_project(options)
    except LoadError as exc:
        raise StackError(str(issue) for issue in exc.issues) from exc


class _ContentError(OrchestratorError):
    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(message)


def read_contents(project: Project, environ: Mapping[str, str]) -> dict[tuple[str, str], bytes]:
    """The content of each secret and config the project declares (not external), keyed (kind, key):
    from `file:` (read here), `environment:` (a variable of `environ`) or `content:`."""
    contents: dict[tuple[str, str], bytes] = {}
    issues: list[str] = []
    for kind, declared in (("secrets", project.secrets), ("configs", project.configs)):
        for key, resource in sorted(declared.items()):
            if resource.external:
                continue
            try:
                contents[(kind, key)] = _read_content(resource.raw, environ)
            except _ContentError as exc:
                issues.append(f"{kind}.{key}{exc.where}: {exc}")
    if issues:
        raise StackError(issues)
    return contents


def _read_content(raw: Mapping[str, Any], environ: Mapping[str, str]) -> bytes:
    if "file" in raw:
        path = Path(str(raw["file"]))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise _ContentError(".file", f"can't read {path}: {exc.strerror or exc}") from exc
    if "environment" in raw:
        name = str(raw["environment"])
        if name not in environ:
            raise _ContentError(".environment", f"environment variable {name} is not set")
        return environ[name].encode()
    if "content" in raw:
        return str(raw["content"]).encode()
    raise _ContentError("", "has no content: give it `file:`, `environment:` or `content:`, or make it external")


# --- the mapping -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Report:
    issues: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def issue(self, where: str, message: str) -> None:
        self.issues.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")


@dataclass(slots=True, kw_only=True)
class _Stack:
    project: Project
    images: Mapping[str, str]
    digests: Mapping[tuple[str, str], str]  # the stack's own secrets and configs
    report: _Report = field(default_factory=_Report)
    used_networks: set[str] = field(default_factory=set)
    used_volumes: set[str] = field(default_factory=set)
    used_external: dict[str, set[str]] = field(default_factory=lambda: {"secrets": set(), "configs": set()})

    @property
    def labels(self) -> dict[str, str]:
        return {NAMESPACE_LABEL: self.project.name}

    def scoped(self, key: str) -> str:
        return f"{self.project.name}_{key}"


def map_project(
    project: Project, *, images: Mapping[str, str], contents: Mapping[tuple[str, str], bytes],
) -> StackDeployment:
    """The deployment the project describes. `images` gives the image to run for a service (the caller's
    builds, pinned); a service not in it runs its `image:`. `contents` is what `read_contents` returned.
    Raise StackError listing every issue."""
    stack = _Stack(project=project, images=images, digests={k: _digest(v) for k, v in contents.items()})
    secrets = _map_file_objects(stack, "secrets", contents)
    configs = _map_file_objects(stack, "configs", contents)
    services = tuple(_map_service(stack, service) for _, service in sorted(project.services.items()))
    networks, external_networks = _map_networks(stack)
    _check_volumes(stack)
    if stack.report.issues:
        raise StackError(stack.report.issues)
    return StackDeployment(
        spec=StackSpec(name=project.name), services=services, networks=networks, secrets=secrets,
        configs=configs, external_networks=external_networks,
        external_secrets=tuple(sorted(stack.used_external["secrets"])),
        external_configs=tuple(sorted(stack.used_external["configs"])),
        warnings=(*project.warnings, *stack.report.warnings),
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- value readers: each reports what it can't read and returns None ------------------------------


def _is_extension(key: object) -> bool:
    return str(key).startswith("x-")


def _is_no_op(value: Any) -> bool:
    """`privileged: false`, `cap_add: []`: the key asks for nothing (0 may ask for something: swappiness)."""
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def _check_options(
    section: Mapping[str, Any], supported: Iterable[str], where: str, report: _Report, *, unsupported: str = "",
) -> None:
    """Report each key of `section` not in `supported`: as not supported by the cluster when it is one of
    `unsupported` (space-separated), else as unknown."""
    known = set(supported)
    refused = set(unsupported.split())
    for key in section:
        if key in known or _is_extension(key):
            continue
        if key in refused:
            if not _is_no_op(section[key]):
                report.issue(f"{where}.{key}", "not supported by the cluster")
        else:
            report.issue(f"{where}.{key}", f"unknown option (expected one of: {', '.join(sorted(known))})")


def _section(parent: Mapping[str, Any], key: str, where: str, report: _Report) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        report.issue(f"{where}.{key}", f"must be a mapping, not {value!r}")
        return {}
    return value


def _seconds(value: Any, where: str, report: _Report) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        report.issue(where, f"must be a duration such as 10s or 1m30s, not {value!r}")
        return None
    try:
        return parse_duration(value) / 1e9
    except ValueError as exc:
        report.issue(where, str(exc))
        return None


def _bytes(value: Any, where: str, report: _Report) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        report.issue(where, f"must be a size such as 64m or 1g, not {value!r}")
        return None
    try:
        return parse_size(value)
    except SpecError as exc:
        report.issue(where, str(exc))
        return None


def _nano_cpus(value: Any, where: str, report: _Report) -> int | None:
    """Docker's ParseCPUs: a decimal number of CPUs, a whole number of nano-CPUs."""
    if value is None:
        return None
    try:
        nanos = Decimal(str(value)) * 10**9
    except InvalidOperation:
        nanos = Decimal(-1)
    if isinstance(value, bool) or nanos < 0 or nanos != nanos.to_integral_value():
        report.issue(where, f"must be a number of CPUs such as 0.5 or 2, not {value!r}")
        return None
    return int(nanos)


def _integer(value: Any, where: str, report: _Report) -> int | None:
    """A count: an int, or digits (an interpolated value stays a string)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    report.issue(where, f"must be a whole number, not {value!r}")
    return None


def _ratio(value: Any, where: str, report: _Report) -> float | None:
    if value is None:
        return None
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        ratio = -1.0
    if isinstance(value, bool) or not 0.0 <= ratio <= 1.0:
        report.issue(where, f"must be a number from 0 to 1, not {value!r}")
        return None
    return ratio


def _choice(value: Any, choices: Mapping[str, T], where: str, report: _Report) -> T | None:
    if value is None:
        return None
    if value not in choices:
        report.issue(where, f"must be one of {', '.join(choices)}, not {value!r}")
        return None
    return choices[value]


def _strings(value: Any, where: str, report: _Report) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        report.issue(where, f"must be a list of strings, not {value!r}")
        return ()
    return tuple(value)


def _labels(value: Any, where: str, report: _Report) -> dict[str, str]:
    """`{K: V}` or `[K=V]`, as compose reads labels; a key without a value gets ""."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else _text(v) for k, v in value.items()}
    if isinstance(value, list):
        pairs = (str(item).partition("=") for item in value)
        return {k: v for k, _, v in pairs}
    report.issue(where, f"must be a mapping or a list, not {value!r}")
    return {}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- services ----------------------------------------------------------------------------------


def _map_service(stack: _Stack, service: ServiceConfig) -> ServiceSpec:
    where = f"services.{service.name}"
    report = stack.report
    _check_service_keys(service, where, report)
    deploy = _section(service.raw, "deploy", where, report)
    _check_options(deploy, ("mode", "replicas", "labels", "placement", "resources", "restart_policy",
                            "update_config", "rollback_config", "endpoint_mode"), f"{where}.deploy", report)
    mode, replicas = _map_mode(service, deploy, where, report)
    image = _image(stack, service, where)
    labels = {**_labels(deploy.get("labels"), f"{where}.deploy.labels", report), **stack.labels}
    if image:
        labels[IMAGE_LABEL] = service.image or image
    task = TaskSpec(
        container=_map_container(stack, service, image, where),
        resources=_map_resources(service.raw, deploy, where, report),
        restart_policy=_map_restart(service, deploy, where, report),
        placement=_map_placement(deploy, where, report),
        networks=_map_attachments(stack, service, where),
    )
    return ServiceSpec(
        name=stack.scoped(service.name), labels=labels, task=task, mode=mode, replicas=replicas,
        update_config=_map_update(deploy, "update_config", where, report),
        rollback_config=_map_update(deploy, "rollback_config", where, report),
        endpoint=_map_endpoint(service, deploy, where, report),
        depends_on=_map_dependencies(stack, service, where),
    )


def _check_service_keys(service: ServiceConfig, where: str, report: _Report) -> None:
    for key, value in service.raw.items():
        if key in SUPPORTED_SERVICE_KEYS or _is_extension(key):
            continue
        if key in IGNORED_SERVICE_KEYS:
            report.warn(f"{where}.{key}", IGNORED_SERVICE_KEYS[key])
        elif not _is_no_op(value):
            report.issue(f"{where}.{key}", _REASONS.get(key, "not supported by the cluster"))
    if service.raw.get("pull_policy") == "always":  # as pycompose: the others find the image in place
        report.issue(f"{where}.pull_policy", "always needs a registry, and the cluster has none; "
                     "use missing, never or build")


def _image(stack: _Stack, service: ServiceConfig, where: str) -> str:
    image = stack.images.get(service.name) or service.image
    if not image:
        stack.report.issue(where, "has no image: build it first (its image is then passed in) or set `image:`")
    return image or ""


def _map_mode(service: ServiceConfig, deploy: Mapping[str, Any], where: str,
              report: _Report) -> tuple[ServiceMode, int]:
    mode = deploy.get("mode", "replicated")
    if mode == "global":
        if deploy.get("replicas") is not None:
            report.issue(f"{where}.deploy.replicas", "can only be used with replicated mode, not global")
        if service.raw.get("scale") is not None:
            report.issue(f"{where}.scale", "can only be used with replicated mode, not global")
        return ServiceMode.GLOBAL, 0
    if mode != "replicated":
        report.issue(f"{where}.deploy.mode", f"{mode} is not supported by the cluster (replicated or global)")
    return ServiceMode.REPLICATED, service.scale


def _map_container(stack: _Stack, service: ServiceConfig, image: str, where: str) -> ContainerSpec:
    raw, report = service.raw, stack.report
    grace = _seconds(raw.get("stop_grace_period"), f"{where}.stop_grace_period", report)
    return ContainerSpec(
        image=image,
        command=service.entrypoint or (),
        args=service.command or (),
        env=tuple(sorted(f"{k}={v}" for k, v in service.environment.items())),
        labels={**{k: "" if v is None else str(v) for k, v in service.labels.items()}, **stack.labels},
        mounts=_map_mounts(stack, service, where),
        hostname=str(raw.get("hostname") or ""),
        user=str(raw.get("user") or ""),
        workdir=str(raw.get("working_dir") or ""),
        stop_grace_period=10.0 if grace is None else grace,
        healthcheck=_map_healthcheck(service, f"{where}.healthcheck", report),
        secrets=_map_file_refs(stack, service, "secrets", where),
        configs=_map_file_refs(stack, service, "configs", where),
        read_only=bool(raw.get("read_only")),
    )


def _map_healthcheck(service: ServiceConfig, where: str, report: _Report) -> HealthConfig | None:
    check = service.healthcheck
    if check is None:
        return None
    if check.disabled or check.test[:1] == ("NONE",):
        return HealthConfig(test=("NONE",))
    if check.start_interval_ns is not None:
        report.issue(f"{where}.start_interval", "not supported by the cluster")

    def seconds(ns: int | None) -> float:
        return 0.0 if ns is None else ns / 1e9

    return HealthConfig(test=check.test, interval=seconds(check.interval_ns), timeout=seconds(check.timeout_ns),
                        retries=check.retries or 0, start_period=seconds(check.start_period_ns))


# --- mounts ------------------------------------------------------------------------------------


def _map_mounts(stack: _Stack, service: ServiceConfig, where: str) -> tuple[Mount, ...]:
    mounts = [_map_volume(stack, volume, f"{where}.volumes[{i}]", service.raw["volumes"][i])
              for i, volume in enumerate(service.volumes)]
    tmpfs = service.raw.get("tmpfs") or []
    mounts += [_map_tmpfs_entry(str(entry), f"{where}.tmpfs[{i}]", stack.report)
               for i, entry in enumerate(tmpfs if isinstance(tmpfs, list) else [tmpfs])]
    return tuple(m for m in mounts if m is not None)


def _map_volume(stack: _Stack, volume: VolumeMount, where: str, raw: Mapping[str, Any]) -> Mount | None:
    report = stack.report
    # consistency is for Docker Desktop's file sharing, a no-op on Linux (as in Docker)
    _check_options(raw, ("type", "source", "target", "read_only", "consistency", volume.type), where, report)
    options, at = volume.options, f"{where}.{volume.type}"
    if volume.type == "volume":
        _check_options(options, (), at, report, unsupported="nocopy subpath")
        source = ""
        if volume.source:
            stack.used_volumes.add(volume.source)
            source = stack.project.volumes[volume.source].name
        return Mount(type=MountType.VOLUME, source=source, target=volume.target, read_only=volume.read_only)
    if volume.type == "bind":
        # create_host_path: the short syntax's default; a node's engine decides, as for `docker service create`
        _check_options(options, ("create_host_path",), at, report, unsupported="propagation selinux recursive")
        return Mount(type=MountType.BIND, source=volume.source or "", target=volume.target,
                     read_only=volume.read_only)
    if volume.type == "tmpfs":
        _check_options(options, ("size", "mode"), at, report)
        size = _bytes(options.get("size"), f"{at}.size", report) or 0
        mode = _integer(options.get("mode"), f"{at}.mode", report) or 0
        return Mount(type=MountType.TMPFS, target=volume.target, read_only=volume.read_only,
                     tmpfs_size_bytes=size, tmpfs_mode=mode)
    report.issue(f"{where}.type", f"{volume.type} mounts are not supported by the cluster (volume, bind, tmpfs)")
    return None


def _map_tmpfs_entry(entry: str, where: str, report: _Report) -> Mount:
    """`tmpfs: /run:size=64k,mode=1777` (the engine's option string; the mode in octal)."""
    target, _, text = entry.partition(":")
    size = mode = 0
    read_only = False
    for option in filter(None, text.split(",")):
        name, _, value = option.partition("=")
        if name == "size":
            size = _bytes(value, f"{where}.size", report) or 0
        elif name == "mode" and re.fullmatch(r"[0-7]{1,4}", value):
            mode = int(value, 8)
        elif name in ("ro", "rw") and not value:
            read_only = name == "ro"
        else:
            report.issue(where, f"tmpfs option {option!r} is not supported by the cluster (size, mode, ro)")
    return Mount(type=MountType.TMPFS, target=target, read_only=read_only, tmpfs_size_bytes=size, tmpfs_mode=mode)


def _check_volumes(stack: _Stack) -> None:
    """The top-level volumes services use: each node's engine creates them (local driver) on first use."""
    for key in sorted(stack.used_volumes):
        volume = stack.project.volumes[key]
        if volume.external:
            continue
        where, raw = f"volumes.{key}", volume.raw
        if raw.get("driver") not in (None, "local"):
            stack.report.issue(f"{where}.driver", f"{raw['driver']} is not supported by the cluster (local)")
        if raw.get("driver_opts"):
            stack.report.issue(f"{where}.driver_opts", "not supported by the cluster")
        if raw.get("labels"):
            stack.report.warn(f"{where}.labels", "ignored: each node's engine creates the volume unlabelled")


# --- resources, restarts, placement, updates ---------------------------------------------------


def _map_resources(raw: Mapping[str, Any], deploy: Mapping[str, Any], where: str,
                   report: _Report) -> ResourceRequirements:
    at = f"{where}.deploy.resources"
    resources = _section(deploy, "resources", f"{where}.deploy", report)
    _check_options(resources, ("limits", "reservations"), at, report)
    limits = _section(resources, "limits", at, report)
    reservations = _section(resources, "reservations", at, report)
    _check_options(limits, ("cpus", "memory"), f"{at}.limits", report, unsupported="pids")
    _check_options(reservations, ("cpus", "memory"), f"{at}.reservations", report,
                   unsupported="devices generic_resources")

    # cpus, mem_limit and mem_reservation as pycompose reads them; deploy.resources wins where both are set
    fallbacks = {"limits": {"cpus": "cpus", "memory": "mem_limit"}, "reservations": {"memory": "mem_reservation"}}

    def read(name: str, section: Mapping[str, Any]) -> Resources:
        values: dict[str, tuple[Any, str]] = {}
        for key in ("cpus", "memory"):
            fallback = fallbacks[name].get(key)
            if key in section or fallback is None:
                values[key] = (section.get(key), f"{at}.{name}.{key}")
            else:
                values[key] = (raw.get(fallback), f"{where}.{fallback}")
        return Resources(nano_cpus=_nano_cpus(*values["cpus"], report) or 0,
                         memory_bytes=_bytes(*values["memory"], report) or 0)

    return ResourceRequirements(limits=read("limits", limits), reservations=read("reservations", reservations))


def _map_restart(service: ServiceConfig, deploy: Mapping[str, Any], where: str, report: _Report) -> RestartPolicy:
    """deploy.restart_policy; else `restart:` (which Swarm ignores and we honour); else Swarm's default."""
    if deploy.get("restart_policy") is None:
        if service.restart is None:
            return RestartPolicy()
        return _restart_from_compose(service.restart, f"{where}.restart", report)
    if service.restart is not None:
        report.warn(f"{where}.restart", "ignored: deploy.restart_policy is set too, and wins")
    at = f"{where}.deploy.restart_policy"
    policy = _section(deploy, "restart_policy", f"{where}.deploy", report)
    _check_options(policy, ("condition", "delay", "max_attempts", "window"), at, report)
    default = RestartPolicy()
    condition = _choice(policy.get("condition"), _CONDITIONS, f"{at}.condition", report)
    delay = _seconds(policy.get("delay"), f"{at}.delay", report)
    attempts = _integer(policy.get("max_attempts"), f"{at}.max_attempts", report)
    window = _seconds(policy.get("window"), f"{at}.window", report)
    return RestartPolicy(condition=condition or default.condition,
                         delay=default.delay if delay is None else delay,
                         max_attempts=attempts or 0, window=window or 0.0)


def _restart_from_compose(restart: str, where: str, report: _Report) -> RestartPolicy:
    """"no": never (Docker would leave Swarm's default, any); always, unless-stopped: any;
    on-failure[:N]: on failure, N attempts at most."""
    name, colon, count = restart.partition(":")
    if name == "no" and not colon:
        return RestartPolicy(condition=RestartCondition.NONE)
    if name in ("always", "unless-stopped") and not colon:
        return RestartPolicy(condition=RestartCondition.ANY)
    if name == "on-failure" and (not colon or count.isdigit()):
        return RestartPolicy(condition=RestartCondition.ON_FAILURE, max_attempts=int(count or 0))
    report.issue(where, f"{restart!r} is not a restart policy (no, always, unless-stopped, on-failure[:N])")
    return RestartPolicy()


def _map_placement(deploy: Mapping[str, Any], service_where: str, report: _Report) -> Placement:
    where = f"{service_where}.deploy.placement"
    placement = _section(deploy, "placement", f"{service_where}.deploy", report)
    _check_options(placement, ("constraints", "preferences", "max_replicas_per_node"), where, report)
    constraints = _strings(placement.get("constraints"), f"{where}.constraints", report)
    for i, expression in enumerate(constraints):
        try:
            parse_constraint(expression)
        except OrchestratorError as exc:
            report.issue(f"{where}.constraints[{i}]", str(exc))
    preferences = []
    for i, preference in enumerate(placement.get("preferences") or []):
        at = f"{where}.preferences[{i}]"
        if not isinstance(preference, Mapping) or not isinstance(preference.get("spread"), str):
            report.issue(at, f"must be a mapping such as {{spread: node.labels.zone}}, not {preference!r}")
            continue
        _check_options(preference, ("spread",), at, report)
        try:
            preferences.append(PlacementPreference(spread=parse_spread(preference["spread"])))
        except OrchestratorError as exc:
            report.issue(f"{at}.spread", str(exc))
    max_replicas = _integer(placement.get("max_replicas_per_node"), f"{where}.max_replicas_per_node", report)
    return Placement(constraints=constraints, preferences=tuple(preferences), max_replicas=max_replicas or 0)


def _map_update(deploy: Mapping[str, Any], key: str, where: str, report: _Report) -> UpdateConfig:
    at = f"{where}.deploy.{key}"
    section = _section(deploy, key, f"{where}.deploy", report)
    _check_options(section, ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"),
                   at, report)
    actions = _FAILURE_ACTIONS if key == "update_config" else {k: v for k, v in _FAILURE_ACTIONS.items()
                                                               if v is not FailureAction.ROLLBACK}
    default = UpdateConfig()
    parallelism = _integer(section.get("parallelism"), f"{at}.parallelism", report)
    delay = _seconds(section.get("delay"), f"{at}.delay", report)
    action = _choice(section.get("failure_action"), actions, f"{at}.failure_action", report)
    monitor = _seconds(section.get("monitor"), f"{at}.monitor", report)
    ratio = _ratio(section.get("max_failure_ratio"), f"{at}.max_failure_ratio", report)
    order = _choice(section.get("order"), _ORDERS, f"{at}.order", report)
    return UpdateConfig(
        parallelism=default.parallelism if parallelism is None else parallelism,
        delay=default.delay if delay is None else delay,
        failure_action=action or default.failure_action,
        monitor=default.monitor if monitor is None else monitor,
        max_failure_ratio=default.max_failure_ratio if ratio is None else ratio,
        order=order or default.order,
    )


# --- ports, networks, dependencies -------------------------------------------------------------


def _map_endpoint(service: ServiceConfig, deploy: Mapping[str, Any], where: str, report: _Report) -> EndpointSpec:
    mode = _choice(deploy.get("endpoint_mode"), _ENDPOINT_MODES, f"{where}.deploy.endpoint_mode", report)
    ports = tuple(p for i, raw in enumerate(service.raw.get("ports") or [])
                  if (p := _map_port(raw, f"{where}.ports[{i}]", report)) is not None)
    if mode is EndpointMode.DNSRR and any(p.publish_mode is PublishMode.INGRESS for p in ports):
        report.issue(f"{where}.deploy.endpoint_mode", "dnsrr can't be used with ports published in ingress mode "
                     "(the routing mesh needs a VIP); publish them in host mode")
    return EndpointSpec(mode=mode or EndpointMode.VIP, ports=ports)


def _map_port(raw: Mapping[str, Any], where: str, report: _Report) -> PortConfig | None:
    _check_options(raw, ("mode", "target", "published", "protocol", "name", "host_ip", "app_protocol"),
                   where, report)
    if raw.get("app_protocol"):
        report.warn(f"{where}.app_protocol", "ignored: the cluster routes ports by protocol and number only")
    if str(raw.get("host_ip") or "") not in _WILDCARD_IPS:
        report.issue(f"{where}.host_ip", f"{raw['host_ip']}: a cluster publishes on every address of its nodes")
    published = str(raw.get("published") or "0")
    if not published.isdigit():
        report.issue(f"{where}.published", f"{published}: the cluster publishes single ports, not ranges")
        published = "0"
    protocol = _choice(raw.get("protocol", "tcp"), _PROTOCOLS, f"{where}.protocol", report)
    mode = _choice(raw.get("mode", "ingress"), _PUBLISH_MODES, f"{where}.mode", report)
    if protocol is None or mode is None:
        return None
    return PortConfig(name=str(raw.get("name") or ""), protocol=protocol, target_port=int(raw["target"]),
                      published_port=int(published), publish_mode=mode)


def _map_attachments(stack: _Stack, service: ServiceConfig, where: str) -> tuple[NetworkAttachmentConfig, ...]:
    """Each network the service joins (the loader gives `default` to those that name none), by full name,
    with its aliases and, as Docker adds it, the service's own name."""
    raw = service.raw.get("networks") or {}
    attachments = []
    for key, settings in service.networks.items():
        at = f"{where}.networks.{key}"
        _check_options(raw.get(key) or {}, ("aliases", "priority"), at, stack.report,
                       unsupported="ipv4_address ipv6_address link_local_ips mac_address driver_opts "
                                   "gw_priority interface_name")
        stack.used_networks.add(key)
        target = stack.project.networks[key].name
        aliases = list(settings.aliases)
        if target not in _NOT_USER_DEFINED:
            aliases.append(service.name)
        attachments.append(NetworkAttachmentConfig(target=target, aliases=tuple(dict.fromkeys(aliases))))
    return tuple(sorted(attachments, key=lambda a: a.target))


def _map_networks(stack: _Stack) -> tuple[tuple[NetworkSpec, ...], tuple[str, ...]]:
    """The networks some service uses (Docker creates no other); external ones must exist already."""
    own: list[NetworkSpec] = []
    external: set[str] = set()
    for key in sorted(stack.used_networks):
        network = stack.project.networks[key]
        if network.external:
            external.add(network.name)
        else:
            own.append(_map_network(stack, network))
    return tuple(sorted(own, key=lambda n: n.name)), tuple(sorted(external))


def _map_network(stack: _Stack, network: Resource) -> NetworkSpec:
    raw, where, report = network.raw, f"networks.{network.key}", stack.report
    _check_options(raw, ("name", "driver", "driver_opts", "attachable", "internal", "labels", "ipam", "external",
                         "enable_ipv4", "enable_ipv6"), where, report)
    driver = raw.get("driver") or "overlay"
    if driver != "overlay":
        report.issue(f"{where}.driver", f"{driver} is not supported by the cluster: a stack's networks are "
                     "overlay networks (or make it external)")
    if raw.get("enable_ipv6"):
        report.issue(f"{where}.enable_ipv6", "not supported by the cluster")
    if raw.get("enable_ipv4") is False:
        report.issue(f"{where}.enable_ipv4", "not supported by the cluster: overlay networks are IPv4")
    return NetworkSpec(
        name=network.name, driver="overlay",
        labels={**_labels(raw.get("labels"), f"{where}.labels", report), **stack.labels},
        options={str(k): _text(v) for k, v in (raw.get("driver_opts") or {}).items()},
        subnets=_map_ipam(raw, where, report),
        attachable=bool(raw.get("attachable")), internal=bool(raw.get("internal")),
    )


def _map_ipam(raw: Mapping[str, Any], network_where: str, report: _Report) -> tuple[str, ...]:
    where = f"{network_where}.ipam"
    ipam = _section(raw, "ipam", network_where, report)
    _check_options(ipam, ("driver", "config"), where, report, unsupported="options")
    if ipam.get("driver") not in (None, "default"):
        report.issue(f"{where}.driver", f"{ipam['driver']} is not supported by the cluster (default)")
    subnets = []
    for i, entry in enumerate(ipam.get("config") or []):
        at = f"{where}.config[{i}]"
        if not isinstance(entry, Mapping):
            report.issue(at, f"must be a mapping, not {entry!r}")
            continue
        _check_options(entry, ("subnet",), at, report, unsupported="ip_range gateway aux_addresses")
        if entry.get("subnet"):
            subnets.append(str(entry["subnet"]))
    return tuple(subnets)


def _implied_dependencies(raw: Mapping[str, Any]) -> set[str]:
    """The dependencies the loader adds for links, volumes_from and network_mode (already issues)."""
    implied = {str(link).split(":")[0] for link in raw.get("links") or []}
    implied |= {str(v).split(":")[0] for v in raw.get("volumes_from") or [] if not str(v).startswith("container:")}
    mode = str(raw.get("network_mode") or "")
    return implied | ({mode.split(":", 1)[1]} if mode.startswith("service:") else set())


def _map_dependencies(stack: _Stack, service: ServiceConfig, where: str) -> tuple[ServiceDependency, ...]:
    implied = _implied_dependencies(service.raw)
    dependencies = []
    for other, dependency in sorted(service.depends_on.items()):
        if other not in stack.project.services:
            if dependency.required:  # the loader reports these; optional ones it drops
                stack.report.issue(f"{where}.depends_on.{other}", f'service "{other}" is not defined')
            continue
        if dependency.restart and other not in implied:
            stack.report.issue(f"{where}.depends_on.{other}.restart", "the cluster does not restart a service when "
                               "a dependency is updated or restarted; remove it or set it to false")
        dependencies.append(ServiceDependency(service=stack.scoped(other),
                                              condition=DependencyCondition(dependency.condition.value)))
    return tuple(dependencies)


# --- secrets and configs -----------------------------------------------------------------------


def _map_file_objects(stack: _Stack, kind: str, contents: Mapping[tuple[str, str], bytes]) -> tuple[SecretSpec, ...]:
    """Every secret (or config) the project declares and does not mark external, with its content."""
    declared = stack.project.secrets if kind == "secrets" else stack.project.configs
    limit = MAX_SECRET_SIZE if kind == "secrets" else MAX_CONFIG_SIZE
    specs = []
    for key, resource in sorted(declared.items()):
        if resource.external:
            continue
        where, raw = f"{kind}.{key}", resource.raw
        _check_options(raw, ("name", "file", "environment", "content", "labels", "external"), where, stack.report,
                       unsupported="driver driver_opts template_driver")
        data = contents.get((kind, key))
        if data is None:
            stack.report.issue(where, "its content was not read (read_contents)")
            continue
        if len(data) > limit:
            stack.report.issue(where, f"{resource.name} is {len(data)} bytes; a {kind[:-1]} holds at most "
                               f"{limit} bytes ({limit // 1024} KB)")
        labels = {**_labels(raw.get("labels"), f"{where}.labels", stack.report), **stack.labels}
        specs.append(SecretSpec(name=resource.name, labels=labels, data=data))
    return tuple(sorted(specs, key=lambda s: s.name))


def _map_file_refs(stack: _Stack, service: ServiceConfig, kind: str, where: str) -> tuple[FileReference, ...]:
    """The service's secrets (files under /run/secrets, or absolute paths) or configs (absolute paths)."""
    refs = service.secrets if kind == "secrets" else service.configs
    declared = stack.project.secrets if kind == "secrets" else stack.project.configs
    out = []
    for i, ref in enumerate(refs):
        resource = declared[ref.source]
        if resource.external:
            stack.used_external[kind].add(resource.name)
        target = ref.target
        if kind == "secrets" and target.startswith(f"{SECRETS_DIR}/"):
            target = target[len(SECRETS_DIR) + 1 :]
        mode = 0o444 if ref.mode is None else ref.mode
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            stack.report.issue(f"{where}.{kind}[{i}].mode", f"must be a file mode such as 0440, not {ref.mode!r}")
            mode = 0o444
        out.append(FileReference(
            name=resource.name, target=target, uid="0" if ref.uid is None else str(ref.uid),
            gid="0" if ref.gid is None else str(ref.gid), mode=mode,
            digest="" if resource.external else stack.digests.get((kind, ref.source), ""),
        ))
    return tuple(sorted(out, key=lambda r: r.name))
