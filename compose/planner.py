"""The pure up/down planner: (project, observed containers, options) -> ordered typed actions.

Nothing here talks to an engine. The applier runs actions level by level: every action of a
level may run in parallel once all actions of lower levels are done. Networks, volumes and
orphan removals are level 0; a service's containers are at 1 + the depth of its dependencies.
Within a level, the actions of one service (e.g. RecreateContainer then StartContainer) keep
their order; different services can go concurrently.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from compose.errors import ComposeError
from compose.model import Project, Resource, ServiceConfig, config_hash

LABEL_PREFIX = "com.docker.compose"
PROJECT_LABEL = f"{LABEL_PREFIX}.project"
SERVICE_LABEL = f"{LABEL_PREFIX}.service"
NUMBER_LABEL = f"{LABEL_PREFIX}.container-number"
ONEOFF_LABEL = f"{LABEL_PREFIX}.oneoff"
CONFIG_HASH_LABEL = f"{LABEL_PREFIX}.config-hash"
WORKING_DIR_LABEL = f"{LABEL_PREFIX}.project.working_dir"
CONFIG_FILES_LABEL = f"{LABEL_PREFIX}.project.config_files"
DEPENDS_ON_LABEL = f"{LABEL_PREFIX}.depends_on"
VERSION_LABEL = f"{LABEL_PREFIX}.version"
NETWORK_LABEL = f"{LABEL_PREFIX}.network"
VOLUME_LABEL = f"{LABEL_PREFIX}.volume"


class PlanError(ComposeError):
    """The request can't be planned (e.g. an unknown service was named)."""


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    DEAD = "dead"
    REMOVING = "removing"


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedContainer:
    """What the engine reports about one container carrying the project's labels."""

    id: str
    name: str
    service: str
    number: int
    config_hash: str
    state: ContainerState
    oneoff: bool = False


def observe_container(*, id: str, name: str, state: str, labels: Mapping[str, str]) -> ObservedContainer:
    """An ObservedContainer from what the engine lists (name without a leading '/')."""
    return ObservedContainer(
        id=id, name=name.lstrip("/"), service=labels.get(SERVICE_LABEL, ""),
        number=int(labels.get(NUMBER_LABEL, "0") or 0), config_hash=labels.get(CONFIG_HASH_LABEL, ""),
        state=ContainerState(state), oneoff=labels.get(ONEOFF_LABEL, "False") == "True",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UpOptions:
    force_recreate: bool = False
    no_recreate: bool = False
    no_deps: bool = False
    remove_orphans: bool = False
    scale: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DownOptions:
    remove_orphans: bool = False
    remove_volumes: bool = False


class Reason(enum.StrEnum):
    CONFIG_CHANGED = "config changed"
    FORCED = "force recreate"
    DEPENDENCY_RECREATED = "dependency recreated"
    ORPHAN = "orphan"
    SCALE_DOWN = "scale down"
    DOWN = "down"


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateNetwork:
    level: int
    key: str  # the key under `networks:`
    name: str  # `<project>_<key>` or as configured
    labels: Mapping[str, str]
    config: Resource


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateVolume:
    level: int
    key: str
    name: str
    labels: Mapping[str, str]
    config: Resource


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateContainer:
    level: int
    service: str
    number: int
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecreateContainer:
    """Stop and remove `old`, then create its replacement under the same name and number."""

    level: int
    service: str
    number: int
    name: str
    labels: Mapping[str, str]
    old_id: str
    reason: Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class StartContainer:
    level: int
    service: str
    number: int
    name: str
    container_id: str | None = None  # None: the container made by an earlier action of this plan


@dataclass(frozen=True, slots=True, kw_only=True)
class StopContainer:
    level: int
    service: str
    name: str
    container_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveContainer:
    level: int
    service: str
    name: str
    container_id: str
    reason: Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveNetwork:
    level: int
    key: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveVolume:
    level: int
    key: str
    name: str


Action = (CreateNetwork | CreateVolume | CreateContainer | RecreateContainer | StartContainer
          | StopContainer | RemoveContainer | RemoveNetwork | RemoveVolume)


# ---- names and labels ------------------------------------------------------------------------

def container_name(project: Project, service: ServiceConfig, number: int) -> str:
    """`container_name`, else `<project>-<service>-<number>` as compose v2 names them."""
    return service.container_name or f"{project.name}-{service.name}-{number}"


@functools.cache
def _version() -> str:
    from importlib import metadata  # lazily: a tenth of a second at start-up

    try:
        return metadata.version("pycontainers")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def depends_on_label(service: ServiceConfig) -> str:
    """compose's form: `db:service_healthy:true,cache:service_started:false` (restart flag last)."""
    return ",".join(f"{name}:{dep.condition.value}:{str(dep.restart).lower()}"
                    for name, dep in service.depends_on.items())


def project_labels(project: Project) -> dict[str, str]:
    return {
        PROJECT_LABEL: project.name,
        WORKING_DIR_LABEL: str(project.working_dir),
        CONFIG_FILES_LABEL: ",".join(str(p) for p in project.config_files),
    }


def container_labels(project: Project, service: ServiceConfig, *, number: int, oneoff: bool = False) -> dict[str, str]:
    """The service's own labels, then compose's (which win)."""
    return {
        **service.labels,
        **project_labels(project),
        SERVICE_LABEL: service.name,
        NUMBER_LABEL: str(number),
        ONEOFF_LABEL: "True" if oneoff else "False",
        CONFIG_HASH_LABEL: config_hash(service),
        DEPENDS_ON_LABEL: depends_on_label(service),
        VERSION_LABEL: _version(),
    }


def resource_labels(project: Project, resource: Resource, *, kind: str) -> dict[str, str]:
    user = resource.raw.get("labels") or {}
    return {**user, PROJECT_LABEL: project.name, f"{LABEL_PREFIX}.{kind}": resource.key,
            VERSION_LABEL: _version()}


# ---- dependency order ------------------------------------------------------------------------

def select_with_dependencies(project: Project, services: Iterable[str] | None, *, no_deps: bool) -> list[str]:
    """The named services (all when None) and, unless no_deps, everything they depend on."""
    names = list(project.services) if services is None else list(services)
    unknown = [n for n in names if n not in project.services]
    if unknown:
        raise PlanError(f"no such service: {', '.join(unknown)}")
    selected: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in selected:
            continue
        selected.add(name)
        if not no_deps:
            pending += [d for d in project.services[name].depends_on if d in project.services]
    return sorted(selected)


def dependency_levels(project: Project, names: Collection[str]) -> dict[str, int]:
    """0 for a service with no dependency among `names`, else 1 + its deepest dependency."""
    levels: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...]) -> int:
        if name in levels:
            return levels[name]
        if name in seen:
            raise PlanError(f"dependency cycle detected: {' -> '.join((*seen, name))}")
        deps = [d for d in project.services[name].depends_on if d in names]
        levels[name] = 1 + max((level(d, (*seen, name)) for d in deps), default=-1)
        return levels[name]

    for name in names:
        level(name, ())
    return levels


# ---- up --------------------------------------------------------------------------------------

def find_orphans(project: Project, observed: Iterable[ObservedContainer]) -> list[ObservedContainer]:
    """Containers of the project whose service is no longer defined (nor disabled by profiles)."""
    known = set(project.services) | set(project.disabled_services)
    return sorted((c for c in observed if c.service not in known), key=lambda c: c.name)


def _used_resources(project: Project, services: Collection[str]) -> tuple[list[str], list[str]]:
    networks = {n for s in services for n in project.services[s].networks}
    volumes = {v.source for s in services for v in project.services[s].volumes
               if v.type == "volume" and v.source in project.volumes}
    return sorted(n for n in networks if n in project.networks), sorted(v for v in volumes if v is not None)


def _plan_resources(
    project: Project, services: Collection[str], *, existing_networks: Collection[str],
    existing_volumes: Collection[str],
) -> list[Action]:
    networks, volumes = _used_resources(project, services)
    actions: list[Action] = []
    for key in networks:
        net = project.networks[key]
        if not net.external and net.name not in existing_networks:
            actions.append(CreateNetwork(level=0, key=key, name=net.name, config=net,
                                         labels=resource_labels(project, net, kind="network")))
    for key in volumes:
        vol = project.volumes[key]
        if not vol.external and vol.name not in existing_volumes:
            actions.append(CreateVolume(level=0, key=key, name=vol.name, config=vol,
                                        labels=resource_labels(project, vol, kind="volume")))
    return actions


@dataclass(frozen=True, slots=True, kw_only=True)
class _ServicePlan:
    actions: list[Action]
    recreated: bool


def _recreate_reason(
    current: ObservedContainer, wanted_hash: str, *, options: UpOptions, dependency_recreated: bool
) -> Reason | None:
    if options.no_recreate:
        return None
    if options.force_recreate:
        return Reason.FORCED
    if current.config_hash != wanted_hash:
        return Reason.CONFIG_CHANGED
    return Reason.DEPENDENCY_RECREATED if dependency_recreated else None


def _plan_service(
    project: Project, service: ServiceConfig, containers: Sequence[ObservedContainer], *, level: int,
    options: UpOptions, dependency_recreated: bool,
) -> _ServicePlan:
    scale = options.scale.get(service.name, service.scale)
    keep, extra = list(containers[:scale]), list(containers[scale:])
    actions: list[Action] = [RemoveContainer(level=level, service=service.name, name=c.name, container_id=c.id,
                                             reason=Reason.SCALE_DOWN) for c in extra]
    wanted = config_hash(service)
    recreated = False
    for current in keep:
        reason = _recreate_reason(current, wanted, options=options, dependency_recreated=dependency_recreated)
        labels = container_labels(project, service, number=current.number)
        if reason is not None:
            recreated = True
            actions.append(RecreateContainer(level=level, service=service.name, number=current.number,
                                             name=container_name(project, service, current.number),
                                             labels=labels, old_id=current.id, reason=reason))
            actions.append(StartContainer(level=level, service=service.name, number=current.number,
                                          name=container_name(project, service, current.number)))
        elif current.state != ContainerState.RUNNING:
            actions.append(StartContainer(level=level, service=service.name, number=current.number,
                                          name=current.name, container_id=current.id))
    actions += _plan_new_containers(project, service, keep, count=scale - len(keep), level=level)
    return _ServicePlan(actions=actions, recreated=recreated)


def _plan_new_containers(
    project: Project, service: ServiceConfig, keep: Sequence[ObservedContainer], *, count: int, level: int
) -> list[Action]:
    used = {c.number for c in keep}
    numbers = [n for n in range(1, len(used) + count + 1) if n not in used][:count]
    actions: list[Action] = []
    for number in numbers:
        name = container_name(project, service, number)
        labels = container_labels(project, service, number=number)
        actions.append(CreateContainer(level=level, service=service.name, number=number, name=name, labels=labels))
        actions.append(StartContainer(level=level, service=service.name, number=number, name=name))
    return actions


def _by_service(observed: Iterable[ObservedContainer]) -> dict[str, list[ObservedContainer]]:
    grouped: dict[str, list[ObservedContainer]] = {}
    for container in sorted(observed, key=lambda c: (c.number, c.name)):
        if not container.oneoff:
            grouped.setdefault(container.service, []).append(container)
    return grouped


def _sorted_by_level(actions: list[Action]) -> list[Action]:
    return sorted(actions, key=lambda a: a.level)  # stable: order within a level is kept


def plan_up(
    project: Project, *, observed: Sequence[ObservedContainer], options: UpOptions = UpOptions(),
    services: Iterable[str] | None = None, existing_networks: Collection[str] = (),
    existing_volumes: Collection[str] = (),
) -> list[Action]:
    """Actions that bring the selected services (and their dependencies) to the project's config."""
    selected = select_with_dependencies(project, services, no_deps=options.no_deps)
    levels = dependency_levels(project, selected)
    actions = _plan_resources(project, selected, existing_networks=existing_networks,
                              existing_volumes=existing_volumes)
    if options.remove_orphans:
        actions += [RemoveContainer(level=0, service=c.service, name=c.name, container_id=c.id,
                                    reason=Reason.ORPHAN) for c in find_orphans(project, observed)]
    grouped = _by_service(observed)
    recreated: set[str] = set()
    for name in sorted(selected, key=lambda n: (levels[n], n)):
        service = project.services[name]
        triggered = any(d in recreated and dep.restart for d, dep in service.depends_on.items())
        plan = _plan_service(project, service, grouped.get(name, []), level=levels[name] + 1, options=options,
                             dependency_recreated=triggered)
        actions += plan.actions
        if plan.recreated:
            recreated.add(name)
    return _sorted_by_level(actions)


# ---- down ------------------------------------------------------------------------------------

def plan_down(
    project: Project, *, observed: Sequence[ObservedContainer], options: DownOptions = DownOptions(),
    existing_networks: Collection[str] | None = None, existing_volumes: Collection[str] | None = None,
) -> list[Action]:
    """Stop and remove containers dependents-first, then the project's networks (and volumes)."""
    names = sorted(project.services)
    levels = dependency_levels(project, names)
    top = max(levels.values(), default=0)
    actions: list[Action] = []
    for container in sorted(observed, key=lambda c: (c.service, c.number, c.name)):
        if container.service in levels:
            level = top - levels[container.service]
        elif container.service in project.disabled_services or options.remove_orphans:
            level = 0
        else:
            continue
        actions += _remove_container(container, level=level)
    last = top + 1
    actions += [RemoveNetwork(level=last, key=k, name=n.name) for k, n in sorted(project.networks.items())
                if not n.external and (existing_networks is None or n.name in existing_networks)]
    if options.remove_volumes:
        actions += [RemoveVolume(level=last, key=k, name=v.name) for k, v in sorted(project.volumes.items())
                    if not v.external and (existing_volumes is None or v.name in existing_volumes)]
    return _sorted_by_level(actions)


def _remove_container(container: ObservedContainer, *, level: int) -> list[Action]:
    remove = RemoveContainer(level=level, service=container.service, name=container.name,
                             container_id=container.id, reason=Reason.DOWN)
    if container.state in (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING):
        return [StopContainer(level=level, service=container.service, name=container.name,
                              container_id=container.id), remove]
    return [remove]


def group_by_level(actions: Iterable[Action]) -> list[list[Action]]:
    """Actions split into levels, for an applier that runs each level's actions concurrently."""
    levels: dict[int, list[Action]] = {}
    for action in actions:
        levels.setdefault(action.level, []).append(action)
    return [levels[k] for k in sorted(levels)]
