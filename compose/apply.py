"""The applier: runs the planner's actions against an engine Backend, concurrently where the plan allows.

`up`: networks, volumes and orphan removals first (together); then one task per service, which waits
for its dependencies' conditions (an event per service, then service_started / service_healthy /
service_completed_successfully checked on the dependency's containers) and runs its own actions, one
container's chain (recreate -> start) after another's only where they share a container. `down` and
`stop` run the planner's levels in order, every action of a level at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compose.backend import Backend, EngineError, ResourceInUse
from compose.build import build_images
from compose.container_spec import (
    CreateOptions,
    container_create_body,
    file_sources,
    image_name,
    network_create_body,
    secondary_networks,
    stop_timeout,
    volume_create_body,
)
from compose.errors import ComposeError
from compose.model import DependencyCondition, Project, ServiceConfig
from compose.planner import (
    Action,
    ContainerState,
    CreateContainer,
    CreateNetwork,
    CreateVolume,
    ObservedContainer,
    RecreateContainer,
    RemoveContainer,
    RemoveNetwork,
    RemoveVolume,
    StartContainer,
    StopContainer,
    group_by_level,
    observe_container,
)

POLL_INTERVAL = 0.1


class ApplyError(ComposeError):
    """An action failed; what was done so far stays, inspectable, for `down` to remove."""


class DependencyFailed(ApplyError):
    """A dependency did not reach its condition."""


class ProgressSink(Protocol):
    """Where the applier reports each resource's state, as Compose's progress lines."""

    def update(self, kind: str, name: str, status: str, *, done: bool = False, error: bool = False) -> None: ...


class NoProgress:
    def update(self, kind: str, name: str, status: str, *, done: bool = False, error: bool = False) -> None:
        return None


BuildFn = Callable[[ServiceConfig], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyOptions:
    timeout: int | None = None  # -t: seconds to wait for a stop before SIGKILL (None: the service's own)
    environ: Mapping[str, str] = field(default_factory=dict)  # for secrets with an environment source
    state_dir: Path = Path("/run/pycompose")  # where secret and config contents are written
    build: BuildFn | None = None  # builds a service's image; None: building is not available
    build_missing: bool = True  # --no-build: False
    pull_missing: bool = True  # nothing to pull from here, but pull_policy is still checked


async def observe_project(backend: Backend, project: str) -> list[ObservedContainer]:
    return [observe_container(id=c["Id"], name=(c.get("Names") or [c["Id"]])[0], state=c["State"],
                              labels=c.get("Labels") or {})
            for c in await backend.list_containers(project)]


def service_chains(actions: Iterable[Action]) -> list[list[Action]]:
    """A service's actions split into chains that may run concurrently: one per container name."""
    chains: dict[str, list[Action]] = {}
    for action in actions:
        chains.setdefault(getattr(action, "name", ""), []).append(action)
    return list(chains.values())


def actions_by_service(actions: Iterable[Action]) -> tuple[list[Action], dict[str, list[Action]]]:
    """(level-0 resource and orphan actions, every other action keyed by service)."""
    first: list[Action] = []
    per_service: dict[str, list[Action]] = {}
    for action in actions:
        if isinstance(action, (CreateNetwork, CreateVolume, RemoveNetwork, RemoveVolume)) or action.level == 0:
            first.append(action)
        else:
            per_service.setdefault(action.service, []).append(action)
    return first, per_service


def images_needed(project: Project, actions: Iterable[Action]) -> dict[str, ServiceConfig]:
    """image name -> a service that creates a container from it, for every create in the plan."""
    needed: dict[str, ServiceConfig] = {}
    for action in actions:
        if isinstance(action, (CreateContainer, RecreateContainer)):
            service = project.services[action.service]
            needed.setdefault(image_name(project, service), service)
    return needed


class Applier:
    def __init__(self, project: Project, backend: Backend, *, progress: ProgressSink | None = None,
                 options: ApplyOptions = ApplyOptions()) -> None:
        self.project = project
        self.backend = backend
        self.progress = progress or NoProgress()
        self.options = options
        self._ids: dict[str, str] = {}  # container name -> id, for containers made by this run
        self.secret_paths: dict[tuple[str, str], str] = {}
        self._ensured: set[str] = set()  # images checked (or built) by this run

    # ---- up ------------------------------------------------------------------------------------
    async def up(self, actions: Sequence[Action], *, services: Collection[str],
                 observed: Sequence[ObservedContainer] = (), wait_conditions: bool = True) -> None:
        """Apply an up plan for `services` (the selection the plan was made for); `observed` (what the plan
        was made from) only serves to report the containers left as they were as Running."""
        await self.ensure_images(actions)
        self.write_file_sources(a.service for a in actions if isinstance(a, (CreateContainer, RecreateContainer)))
        first, per_service = actions_by_service(actions)
        async with asyncio.TaskGroup() as group:
            for action in first:
                group.create_task(self._run(action))
        done = {name: asyncio.Event() for name in services}
        touched = {getattr(a, "name", None) for a in actions}
        untouched = [c for c in observed if c.service in done and not c.oneoff and c.name not in touched
                     and c.state is ContainerState.RUNNING]
        async with asyncio.TaskGroup() as group:
            for name in services:
                group.create_task(self._up_service(name, per_service.get(name, []), done=done,
                                                   untouched=[c.name for c in untouched if c.service == name],
                                                   wait_conditions=wait_conditions))

    async def ensure_images(self, actions: Sequence[Action]) -> None:
        """Check every image the plan creates containers from, then build the missing ones together."""
        missing: list[ServiceConfig] = []
        for image, service in images_needed(self.project, actions).items():
            if image in self._ensured:
                continue
            self._ensured.add(image)
            policy = str(service.raw.get("pull_policy") or "missing")
            if policy == "always":
                raise ApplyError(f"service {service.name}: pull_policy always needs a registry, and none is "
                                 "reachable from this engine; use missing, never or build")
            must_build = policy == "build" and service.build is not None
            if not must_build and await self.backend.inspect_image(image) is not None:
                continue
            if service.build is None:
                raise ApplyError(f"service {service.name}: image {image} not found locally and there is no "
                                 "registry to pull it from (`pynode image bootstrap`, `pynode load` or add build:)")
            if not self.options.build_missing:
                raise ApplyError(f"service {service.name}: image {image} not found and --no-build was given")
            if self.options.build is None:
                raise ApplyError(f"service {service.name}: image {image} not found, and building it is not yet "
                                 "supported by this engine")
            missing.append(service)
        if missing and self.options.build is not None:
            await build_images(self.project, missing, self.options.build)

    def mark_image_ready(self, image: str) -> None:
        """An image built (or checked) before the plan: ensure_images leaves it alone."""
        self._ensured.add(image)

    def write_file_sources(self, services: Iterable[str]) -> None:
        """Write the secrets and configs given as content (or environment) where containers bind them."""
        for name in sorted(set(services)):
            for source in file_sources(self.project, self.project.services[name], self.options.environ):
                if source.content is None:
                    continue
                path = self.options.state_dir / self.project.name / source.kind / source.key
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.write_text(source.content, encoding="utf-8")
                self.secret_paths[(source.kind, source.key)] = str(path)

    async def _up_service(self, name: str, actions: list[Action], *, done: Mapping[str, asyncio.Event],
                          untouched: Sequence[str] = (), wait_conditions: bool = True) -> None:
        service = self.project.services[name]
        try:
            for dep, dependency in service.depends_on.items():
                if dep not in done:
                    continue  # --no-deps, or not selected
                await done[dep].wait()
                if not wait_conditions:  # `create`: nothing runs, so no condition can hold
                    continue
                try:
                    await self.wait_condition(dep, dependency.condition)
                except DependencyFailed as exc:
                    if dependency.required:
                        raise
                    self.progress.update("Service", dep, f"optional dependency failed: {exc}", done=True)
            for container in untouched:
                self.progress.update("Container", container, "Running", done=True)
            async with asyncio.TaskGroup() as group:
                for chain in service_chains(actions):
                    group.create_task(self._run_chain(chain))
        finally:
            done[name].set()

    async def _run_chain(self, chain: Sequence[Action]) -> None:
        for action in chain:
            await self._run(action)

    async def _run(self, action: Action) -> None:
        try:
            await self._dispatch(action)
        except EngineError as exc:
            kind = "Network" if isinstance(action, (CreateNetwork, RemoveNetwork)) else \
                "Volume" if isinstance(action, (CreateVolume, RemoveVolume)) else "Container"
            self.progress.update(kind, action.name, "Error", done=True, error=True)
            raise ApplyError(f"{kind.lower()} {action.name}: {exc}") from exc

    async def _dispatch(self, action: Action) -> None:
        match action:
            case CreateNetwork():
                self.progress.update("Network", action.name, "Creating")
                await self.backend.create_network(network_create_body(action.config, action.labels))
                self.progress.update("Network", action.name, "Created", done=True)
            case CreateVolume():
                self.progress.update("Volume", action.name, "Creating")
                await self.backend.create_volume(volume_create_body(action.config, action.labels))
                self.progress.update("Volume", action.name, "Created", done=True)
            case CreateContainer():
                self.progress.update("Container", action.name, "Creating")
                await self._create(action.service, action.name, action.labels)
                self.progress.update("Container", action.name, "Created", done=True)
            case RecreateContainer():
                self.progress.update("Container", action.name, "Recreate")
                service = self.project.services[action.service]
                await self.backend.stop_container(action.old_id, timeout=self._timeout(service))
                await self.backend.remove_container(action.old_id, force=True)
                await self._create(action.service, action.name, action.labels)
                self.progress.update("Container", action.name, "Recreated", done=True)
            case StartContainer():
                self.progress.update("Container", action.name, "Starting")
                await self.backend.start_container(action.container_id or self._ids[action.name])
                self.progress.update("Container", action.name, "Started", done=True)
            case StopContainer():
                self.progress.update("Container", action.name, "Stopping")
                await self.backend.stop_container(action.container_id, timeout=self._timeout_of(action.service))
                self.progress.update("Container", action.name, "Stopped", done=True)
            case RemoveContainer():
                self.progress.update("Container", action.name, "Removing")
                await self.backend.remove_container(action.container_id, force=True)
                self.progress.update("Container", action.name, "Removed", done=True)
            case RemoveNetwork():
                self.progress.update("Network", action.name, "Removing")
                try:
                    await self.backend.remove_network(action.name)
                except ResourceInUse:  # compose's warning, not an error: an orphan (or a stranger) uses it
                    self.progress.update("Network", action.name, "Resource is still in use", done=True)
                    return
                self.progress.update("Network", action.name, "Removed", done=True)
            case RemoveVolume():
                self.progress.update("Volume", action.name, "Removing")
                await self.backend.remove_volume(action.name)
                self.progress.update("Volume", action.name, "Removed", done=True)

    def _timeout(self, service: ServiceConfig) -> int | None:
        return self.options.timeout if self.options.timeout is not None else stop_timeout(service)

    def _timeout_of(self, service_name: str) -> int | None:
        service = self.project.services.get(service_name)
        return self._timeout(service) if service is not None else self.options.timeout

    async def _service_container_ids(self) -> dict[str, str]:
        """service -> a container of it, for `network_mode: service:NAME`."""
        out: dict[str, str] = {}
        for c in await observe_project(self.backend, self.project.name):
            if not c.oneoff:
                out.setdefault(c.service, c.id)
        return out

    async def _create(self, service_name: str, name: str, labels: Mapping[str, str]) -> str:
        service = self.project.services[service_name]
        others = await self._service_container_ids() if (service.network_mode or "").startswith("service:") else {}
        for volume in service.volumes:
            if volume.type == "bind" and volume.source and volume.options.get("create_host_path", True):
                os.makedirs(volume.source, exist_ok=True)
        options = CreateOptions(name=name, labels=labels, secret_paths=self.secret_paths, service_containers=others)
        body = container_create_body(self.project, service, options, environ=self.options.environ)
        cid = await self.backend.create_container(name, body)
        self._ids[name] = cid
        for network, endpoint in secondary_networks(self.project, service):
            await self.backend.connect_network(network, cid, endpoint)
        return cid

    # ---- conditions ----------------------------------------------------------------------------
    async def _containers_of(self, service: str) -> list[dict[str, Any]]:
        found = await self.backend.list_containers(self.project.name, service=service, oneoff=False)
        infos = [await self.backend.inspect_container(c["Id"]) for c in found]
        return [i for i in infos if i is not None]

    async def wait_condition(self, service: str, condition: DependencyCondition,
                             *, deadline: float | None = None) -> None:
        """Wait until every container of `service` meets `condition`; DependencyFailed when one can't."""
        if condition is DependencyCondition.STARTED:
            return
        reported: set[str] = set()
        while True:
            containers = await self._containers_of(service)
            if not containers:
                raise DependencyFailed(f"dependency failed to start: service {service} has no container")
            pending = [c for c in containers if not self._meets(c, condition, service)]
            for c in containers:
                name = c["Name"].lstrip("/")
                if c in pending and name not in reported:
                    reported.add(name)
                    self.progress.update("Container", name, "Waiting")
                elif c not in pending and name in reported:
                    reported.discard(name)
                    status = "Healthy" if condition is DependencyCondition.HEALTHY else "Exited"
                    self.progress.update("Container", name, status, done=True)
            if not pending:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise DependencyFailed(f"timeout waiting for service {service} ({condition.value})")
            await asyncio.sleep(POLL_INTERVAL)

    def _meets(self, info: Mapping[str, Any], condition: DependencyCondition, service: str) -> bool:
        """True when met, False while pending; DependencyFailed when it can no longer be met."""
        state = info.get("State") or {}
        name = str(info.get("Name", "")).lstrip("/")
        status = state.get("Status")
        if condition is DependencyCondition.COMPLETED_SUCCESSFULLY:
            if status in ("exited", "dead"):
                code = int(state.get("ExitCode") or 0)
                if code != 0:
                    self.progress.update("Container", name, "Error", done=True, error=True)
                    raise DependencyFailed(f"service {service} didn't complete successfully: exit {code}")
                return True
            return False
        health = (state.get("Health") or {}).get("Status")
        if health is None:
            test = ((info.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
            if not test or test[0] == "NONE":
                raise DependencyFailed(f"container {name} has no healthcheck configured")
            return False  # started a moment ago: no health status yet
        if health == "healthy":
            return True
        if health == "unhealthy":
            self.progress.update("Container", name, "Error", done=True, error=True)
            raise DependencyFailed(f"dependency failed to start: container {name} is unhealthy")
        if status in ("exited", "dead"):
            raise DependencyFailed(f"dependency failed to start: container {name} exited "
                                   f"({state.get('ExitCode')})")
        return False

    async def wait_running(self, services: Collection[str], *, timeout: float | None) -> None:
        """`up --wait`: every container running, and healthy where it has a healthcheck."""
        deadline = None if timeout is None else time.monotonic() + timeout

        async def one(service: str) -> None:
            containers = await self._containers_of(service)
            if any((c.get("State") or {}).get("Health") for c in containers):
                await self.wait_condition(service, DependencyCondition.HEALTHY, deadline=deadline)
                return
            for c in containers:
                state = c.get("State") or {}
                if state.get("Status") != ContainerState.RUNNING.value:
                    raise DependencyFailed(f"container {c['Name'].lstrip('/')} is {state.get('Status')}")
                self.progress.update("Container", c["Name"].lstrip("/"), "Healthy" if state.get("Health")
                                     else "Running", done=True)

        async with asyncio.TaskGroup() as group:
            for name in services:
                group.create_task(one(name))

    # ---- down / stop ---------------------------------------------------------------------------
    async def run_levels(self, actions: Sequence[Action]) -> None:
        """Each level's actions at once (one chain per container), levels in order."""
        for level in group_by_level(actions):
            async with asyncio.TaskGroup() as group:
                for chain in service_chains(level):
                    group.create_task(self._run_chain(chain))

    def remove_state(self) -> None:
        """Forget written secret and config contents (after `down`)."""
        root = self.options.state_dir / self.project.name
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        root.rmdir()


def unwrap_group_error(exc: BaseException) -> BaseException:
    """The first leaf of nested ExceptionGroups: the error a user should read."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
