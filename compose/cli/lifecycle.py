"""up, create, down, start, stop, restart, kill, pause, unpause, rm, build."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any

import click

from compose.apply import Applier, ApplyError, ApplyOptions, observe_project
from compose.backend import EngineBackend
from compose.build import build_images, build_service
from compose.cli import global_options, load_from_context, main
from compose.cli.attach import attach_and_wait
from compose.cli.buildoutput import BuildOutput
from compose.cli.progress import make_progress
from compose.cli.session import (
    container_summary,
    engine_client,
    make_backend,
    parallel_limit,
    run,
    select_containers,
)
from compose.container_spec import image_name
from compose.errors import ComposeError
from compose.model import Project, ServiceConfig
from compose.planner import (
    Action,
    ContainerState,
    DownOptions,
    ObservedContainer,
    StartContainer,
    StopContainer,
    UpOptions,
    dependency_levels,
    find_orphans,
    plan_down,
    plan_up,
    select_with_dependencies,
)
from node.client import EngineClient
from node.errors import NodeError, NotFound


def _parse_scale(values: Sequence[str], project: Project) -> dict[str, int]:
    scale: dict[str, int] = {}
    for value in values:
        name, sep, count = value.partition("=")
        if not sep or not count.isdigit():
            raise click.BadParameter(f"{value!r}: expected SERVICE=NUM", param_hint="--scale")
        if name not in project.services:
            raise ComposeError(f"no such service: {name}")
        scale[name] = int(count)
    return scale


def _build_fn(ctx: click.Context, client: EngineClient, project: Project, *, no_cache: bool = False,
              show: bool | None = None) -> Callable[[ServiceConfig], Coroutine[Any, Any, None]]:
    """Builds one service's image in a thread, at most --parallel at once; its plain output on stderr
    (`show` None: when progress is plain, as `up` prints it)."""
    if show is None:
        progress = global_options(ctx).progress
        show = progress != "quiet" and (progress == "plain" or not sys.stderr.isatty())
    limit = asyncio.Semaphore(parallel_limit(ctx))
    output = BuildOutput()

    async def build(service: ServiceConfig) -> None:
        def on_line(text: str) -> None:
            if show:
                for line in text.splitlines():
                    click.echo(output.render(service.name, line), err=True)

        async with limit:
            await asyncio.to_thread(build_service, client, project, service, no_cache=no_cache, on_line=on_line)

    return build


def _apply_options(ctx: click.Context, client: EngineClient, project: Project, *, timeout: int | None,
                   build_missing: bool = True) -> ApplyOptions:
    return ApplyOptions(timeout=timeout, environ=dict(os.environ), build=_build_fn(ctx, client, project),
                        build_missing=build_missing)


async def _resource_names(backend: EngineBackend, project: Project) -> tuple[set[str], set[str]]:
    networks = {n["Name"] for n in await backend.list_networks(project.name)}
    volumes = {v["Name"] for v in await backend.list_volumes(project.name)}
    return networks, volumes


async def _check_external(client: EngineClient, project: Project, services: Sequence[str]) -> None:
    used_networks = {n for s in services for n in project.services[s].networks}
    for key in sorted(used_networks):
        net = project.networks.get(key)
        if net is not None and net.external:
            try:
                await asyncio.to_thread(client.get, f"/networks/{net.name}")
            except NotFound:
                raise ComposeError(f"network {net.name} declared as external, but could not be found") from None
    used_volumes = {v.source for s in services for v in project.services[s].volumes if v.type == "volume"}
    for key in sorted(v for v in used_volumes if v):
        vol = project.volumes.get(key)
        if vol is not None and vol.external:
            try:
                await asyncio.to_thread(client.get, f"/volumes/{vol.name}")
            except NotFound:
                raise ComposeError(f"external volume \"{vol.name}\" not found") from None


async def _converge(
    ctx: click.Context, client: EngineClient, project: Project, *, services: Sequence[str], options: UpOptions,
    timeout: int | None, build: bool, no_build: bool, start: bool, title: str,
) -> tuple[Applier, list[str]]:
    backend = make_backend(ctx, client)
    try:
        selected = select_with_dependencies(project, services or None, no_deps=options.no_deps)
        dependency_levels(project, selected)
        await _check_external(client, project, selected)
        applier = Applier(project, backend, progress=None,
                          options=_apply_options(ctx, client, project, timeout=timeout, build_missing=not no_build))
        if build:
            built = [project.services[name] for name in selected if project.services[name].build is not None]
            await build_images(project, built, _build_fn(ctx, client, project))
            for service in built:
                applier.mark_image_ready(image_name(project, service))
        observed = await _with_stale_images(backend, project, await observe_project(backend, project.name))
        networks, volumes = await _resource_names(backend, project)
        actions: list[Action] = plan_up(project, observed=observed, options=options, services=services or None,
                                        existing_networks=networks, existing_volumes=volumes)
        if not start:
            actions = [a for a in actions if not isinstance(a, StartContainer)]
        if not options.remove_orphans:
            _warn_orphans(find_orphans(project, observed))
        await applier.ensure_images(actions)
        with make_progress(global_options(ctx).progress, title) as progress:
            applier.progress = progress
            await applier.up(actions, services=selected, observed=observed, wait_conditions=start)
        return applier, selected
    finally:
        backend.close()


def _warn_orphans(orphans: Sequence[ObservedContainer]) -> None:
    if orphans:
        click.echo(f"WARN: Found orphan containers ({', '.join(c.name for c in orphans)}) for this project. If "
                   "you removed or renamed this service in your compose file, you can run this command with "
                   "the --remove-orphans flag to clean it up.", err=True)


async def _with_stale_images(backend: EngineBackend, project: Project,
                             observed: list[ObservedContainer]) -> list[ObservedContainer]:
    """Containers made from an older image than their service's current one (rebuilt, re-tagged) must be
    recreated, as compose does: they are observed with a hash that can't match."""
    images = sorted({image_name(project, s) for s in project.services.values()})
    found = dict(zip(images, await asyncio.gather(*(backend.inspect_image(i) for i in images)), strict=True))
    current = {name: (found[image_name(project, s)] or {}).get("Id") for name, s in project.services.items()}
    made_from = {c["Id"]: c.get("ImageID") for c in await backend.list_containers(project.name)}
    return [replace(c, config_hash=f"{c.config_hash}:stale-image")
            if current.get(c.service) and made_from.get(c.id) and made_from[c.id] != current[c.service] else c
            for c in observed]


def _up_options(*, force_recreate: bool, no_recreate: bool, no_deps: bool, remove_orphans: bool,
                scale: dict[str, int]) -> UpOptions:
    if force_recreate and no_recreate:
        raise ComposeError("--force-recreate and --no-recreate are incompatible")
    return UpOptions(force_recreate=force_recreate, no_recreate=no_recreate, no_deps=no_deps,
                     remove_orphans=remove_orphans, scale=scale)


_CONVERGE_OPTIONS = [
    click.option("--build", is_flag=True, help="Build images before starting containers."),
    click.option("--no-build", is_flag=True, help="Don't build an image, even if it's missing."),
    click.option("--force-recreate", is_flag=True, help="Recreate containers even if unchanged."),
    click.option("--no-recreate", is_flag=True, help="If containers already exist, don't recreate them."),
    click.option("--remove-orphans", is_flag=True, help="Remove containers for services not in the file."),
    click.option("--scale", multiple=True, metavar="SERVICE=NUM", help="Scale SERVICE to NUM instances."),
    click.option("--pull", type=click.Choice(["always", "missing", "never", "build"]), default="missing",
                 help="Pull image before running (no registry here: always fails)."),
]


def converge_options(fn: Any) -> Any:
    for option in reversed(_CONVERGE_OPTIONS):
        fn = option(fn)
    return fn


def _check_pull(pull: str) -> None:
    if pull == "always":
        raise ComposeError("--pull always needs a registry, and none is reachable from this engine")


@main.command("up")
@converge_options
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run containers in the background.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.option("--wait", is_flag=True, help="Wait for services to be running|healthy. Implies detached mode.")
@click.option("--wait-timeout", type=int, default=None, help="Maximum duration to wait for the project.")
@click.option("--abort-on-container-exit", is_flag=True, help="Stops all containers if any container stops.")
@click.option("--exit-code-from", metavar="SERVICE", help="Return the exit code of the selected service container.")
@click.option("--no-color", is_flag=True, help="Produce monochrome output.")
@click.option("--no-log-prefix", is_flag=True, help="Don't print prefix in logs.")
@click.option("--no-start", is_flag=True, help="Don't start the services after creating them.")
@click.option("-t", "--timeout", type=int, default=None, help="Shutdown timeout in seconds.")
@click.argument("services", nargs=-1)
@click.pass_context
def up_command(ctx: click.Context, services: tuple[str, ...], detach: bool, build: bool, no_build: bool,
               force_recreate: bool, no_recreate: bool, remove_orphans: bool, scale: tuple[str, ...], pull: str,
               no_deps: bool, wait: bool, wait_timeout: int | None, abort_on_container_exit: bool,
               exit_code_from: str | None, no_color: bool, no_log_prefix: bool, no_start: bool,
               timeout: int | None) -> None:
    """Create and start containers."""
    if build and no_build:
        raise ComposeError("--build and --no-build are incompatible")
    if detach and (abort_on_container_exit or exit_code_from):
        raise ComposeError("--abort-on-container-exit and -d cannot be combined")
    _check_pull(pull)
    project = load_from_context(ctx, services=services)
    if exit_code_from is not None and exit_code_from not in project.services:
        raise ComposeError(f"no such service: {exit_code_from}")
    options = _up_options(force_recreate=force_recreate, no_recreate=no_recreate, no_deps=no_deps,
                          remove_orphans=remove_orphans, scale=_parse_scale(scale, project))
    client = engine_client(ctx)
    started_at = _engine_now()

    async def go() -> tuple[Applier, list[str]]:
        applier, selected = await _converge(ctx, client, project, services=services, options=options,
                                            timeout=timeout, build=build, no_build=no_build, start=not no_start,
                                            title="Running")
        if wait and not no_start:
            backend = make_backend(ctx, client)
            applier.backend = backend
            try:
                with make_progress(global_options(ctx).progress, "Waiting") as progress:
                    applier.progress = progress
                    await applier.wait_running(selected, timeout=wait_timeout)
            finally:
                backend.close()
        return applier, selected

    try:
        _applier, selected = run(go())
    except ApplyError as exc:
        raise ComposeError(str(exc)) from None
    if detach or wait or no_start:
        return
    code = attach_and_wait(ctx, client, project, services=selected, since=started_at,
                           abort_on_exit=abort_on_container_exit or exit_code_from is not None,
                           exit_code_from=exit_code_from, no_color=no_color, no_prefix=no_log_prefix,
                           stop=lambda: _stop_project(ctx, client, project, services=(), timeout=timeout))
    sys.exit(code)


def _engine_now() -> float:
    return time.time()


@main.command("create")
@converge_options
@click.argument("services", nargs=-1)
@click.pass_context
def create_command(ctx: click.Context, services: tuple[str, ...], build: bool, no_build: bool,
                   force_recreate: bool, no_recreate: bool, remove_orphans: bool, scale: tuple[str, ...],
                   pull: str) -> None:
    """Creates containers for a service."""
    _check_pull(pull)
    project = load_from_context(ctx, services=services)
    options = _up_options(force_recreate=force_recreate, no_recreate=no_recreate, no_deps=False,
                          remove_orphans=remove_orphans, scale=_parse_scale(scale, project))
    client = engine_client(ctx)
    try:
        run(_converge(ctx, client, project, services=services, options=options, timeout=None, build=build,
                      no_build=no_build, start=False, title="Running"))
    except ApplyError as exc:
        raise ComposeError(str(exc)) from None


# ---- down ----------------------------------------------------------------------------------------

def _images_to_remove(project: Project, mode: str | None) -> list[str]:
    if mode is None:
        return []
    if mode not in ("local", "all"):
        raise ComposeError(f"invalid --rmi value {mode!r}: use local or all")
    # local: what the project builds, named by `image:` or not (compose v2 removes the images its builds
    # labelled, custom tag or not); all: also the images services only use.
    return sorted({image_name(project, s) for s in project.services.values()
                   if mode == "all" or s.build is not None})


@main.command("down")
@click.option("-v", "--volumes", is_flag=True, help="Remove named volumes declared in the volumes section.")
@click.option("--rmi", type=click.Choice(["local", "all"]), default=None,
              help='Remove images used by services. "local" only those the project builds.')
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not in the file.")
@click.option("-t", "--timeout", type=int, default=None, help="Shutdown timeout in seconds.")
@click.argument("services", nargs=-1)
@click.pass_context
def down_command(ctx: click.Context, volumes: bool, rmi: str | None, remove_orphans: bool, timeout: int | None,
                 services: tuple[str, ...]) -> None:
    """Stop and remove containers, networks."""
    project = load_from_context(ctx, from_labels=True)
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise ComposeError(f"no such service: {', '.join(unknown)}")
    client = engine_client(ctx)
    async def go() -> None:
        backend = make_backend(ctx, client)
        try:
            observed = await observe_project(backend, project.name)
            if not remove_orphans:
                _warn_orphans(find_orphans(project, observed))
            networks, existing_volumes = await _resource_names(backend, project)
            actions = plan_down(project, observed=observed,
                                options=DownOptions(remove_orphans=remove_orphans, remove_volumes=volumes),
                                existing_networks=networks, existing_volumes=existing_volumes)
            if services:
                actions = [a for a in actions if getattr(a, "service", None) in services]
            applier = Applier(project, backend, options=ApplyOptions(timeout=timeout, environ=dict(os.environ)))
            with make_progress(global_options(ctx).progress, "Running") as progress:
                applier.progress = progress
                await applier.run_levels(actions)
                for image in _images_to_remove(project, rmi):
                    await _remove_image(client, image, progress)
            if not services:
                applier.remove_state()
        finally:
            backend.close()

    try:
        run(go())
    except ApplyError as exc:
        raise ComposeError(str(exc)) from None


async def _remove_image(client: EngineClient, image: str, progress: Any) -> None:
    try:
        await asyncio.to_thread(client.delete, f"/images/{image}")
    except NotFound:
        return
    except NodeError as exc:
        progress.update("Image", image, f"Error: {exc}", done=True, error=True)
        return
    progress.update("Image", image, "Removed", done=True)


# ---- start / stop / restart / kill / pause / unpause / rm ---------------------------------------

def _stop_project(ctx: click.Context, client: EngineClient, project: Project, *, services: Sequence[str],
                  timeout: int | None) -> None:
    """Stop the running containers of `services` (all when empty), dependents first."""
    async def go() -> None:
        backend = make_backend(ctx, client)
        try:
            observed = select_containers(await observe_project(backend, project.name), services)
            actions = [a for a in plan_down(project, observed=observed, existing_networks=(), existing_volumes=())
                       if isinstance(a, StopContainer)]
            applier = Applier(project, backend, options=ApplyOptions(timeout=timeout, environ=dict(os.environ)))
            with make_progress(global_options(ctx).progress, "Stopping") as progress:
                applier.progress = progress
                await applier.run_levels(actions)
        finally:
            backend.close()

    run(go())


def _check_services(project: Project, services: Sequence[str]) -> None:
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise ComposeError(f"no such service: {', '.join(unknown)}")


@main.command("stop")
@click.option("-t", "--timeout", type=int, default=None, help="Specify a shutdown timeout in seconds.")
@click.argument("services", nargs=-1)
@click.pass_context
def stop_command(ctx: click.Context, timeout: int | None, services: tuple[str, ...]) -> None:
    """Stop services."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(project, services)
    _stop_project(ctx, engine_client(ctx), project, services=services, timeout=timeout)


@main.command("start")
@click.argument("services", nargs=-1)
@click.pass_context
def start_command(ctx: click.Context, services: tuple[str, ...]) -> None:
    """Start services (their existing containers), each after its dependencies' conditions hold."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(project, services)
    client = engine_client(ctx)

    async def go() -> None:
        backend = make_backend(ctx, client)
        try:
            observed = select_containers(await observe_project(backend, project.name), services)
            if not observed:
                raise ComposeError("service has no container to start" if services else "no containers to start")
            present = sorted({c.service for c in observed if c.service in project.services})
            levels = dependency_levels(project, present)
            # level >= 1: per-service tasks that wait for their dependencies' conditions, as up does
            actions = [StartContainer(level=levels[c.service] + 1, service=c.service, number=c.number,
                                      name=c.name, container_id=c.id)
                       for c in observed if c.service in levels and c.state is not ContainerState.RUNNING]
            applier = Applier(project, backend)
            with make_progress(global_options(ctx).progress, "Running") as progress:
                applier.progress = progress
                await applier.up(actions, services=present)
        finally:
            backend.close()

    try:
        run(go())
    except ApplyError as exc:
        raise ComposeError(str(exc)) from None


def _each_container(ctx: click.Context, services: Sequence[str], *, verb: str, done: str,
                    path: str, states: Sequence[str] | None, params: dict[str, str] | None = None,
                    delete: bool = False) -> None:
    """Apply one engine call to every (matching) container of the services, all at once, with progress."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(project, services)
    client = engine_client(ctx)

    async def go() -> None:
        backend = make_backend(ctx, client)
        try:
            observed = select_containers(await observe_project(backend, project.name), services)
            targets = [c for c in observed if states is None or c.state.value in states]
            with make_progress(global_options(ctx).progress, "Running") as progress:
                async def one(name: str, cid: str) -> None:
                    progress.update("Container", name, verb)
                    call = client.delete if delete else client.post
                    try:
                        await asyncio.to_thread(call, path.format(id=cid), params=params or {})
                    except Exception as exc:
                        progress.update("Container", name, "Error", done=True, error=True)
                        raise ComposeError(f"container {name}: {exc}") from exc
                    progress.update("Container", name, done, done=True)

                async with asyncio.TaskGroup() as group:
                    for c in targets:
                        group.create_task(one(c.name, c.id))
        finally:
            backend.close()

    run(go())


@main.command("restart")
@click.option("-t", "--timeout", type=int, default=None, help="Specify a shutdown timeout in seconds.")
@click.option("--no-deps", is_flag=True, help="Don't restart dependent services.")
@click.argument("services", nargs=-1)
@click.pass_context
def restart_command(ctx: click.Context, timeout: int | None, no_deps: bool, services: tuple[str, ...]) -> None:
    """Restart service containers."""
    params = {"t": str(timeout)} if timeout is not None else {}
    _each_container(ctx, services, verb="Restarting", done="Started", path="/containers/{id}/restart",
                    states=None, params=params)


@main.command("kill")
@click.option("-s", "--signal", "sig", default="SIGKILL", show_default=True, help="SIGNAL to send.")
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not in the file.")
@click.argument("services", nargs=-1)
@click.pass_context
def kill_command(ctx: click.Context, sig: str, remove_orphans: bool, services: tuple[str, ...]) -> None:
    """Force stop service containers."""
    _each_container(ctx, services, verb="Killing", done="Killed", path="/containers/{id}/kill",
                    states=("running", "restarting", "paused"), params={"signal": sig})


@main.command("pause")
@click.argument("services", nargs=-1)
@click.pass_context
def pause_command(ctx: click.Context, services: tuple[str, ...]) -> None:
    """Pause services."""
    _each_container(ctx, services, verb="Pausing", done="Paused", path="/containers/{id}/pause",
                    states=("running",))


@main.command("unpause")
@click.argument("services", nargs=-1)
@click.pass_context
def unpause_command(ctx: click.Context, services: tuple[str, ...]) -> None:
    """Unpause services."""
    _each_container(ctx, services, verb="Unpausing", done="Unpaused", path="/containers/{id}/unpause",
                    states=("paused",))


@main.command("rm")
@click.option("-f", "--force", is_flag=True, help="Don't ask to confirm removal.")
@click.option("-s", "--stop", "stop_first", is_flag=True, help="Stop the containers, if required, before removing.")
@click.option("-v", "--volumes", is_flag=True, help="Remove any anonymous volumes attached to containers.")
@click.argument("services", nargs=-1)
@click.pass_context
def rm_command(ctx: click.Context, force: bool, stop_first: bool, volumes: bool, services: tuple[str, ...]) -> None:
    """Removes stopped service containers."""
    project = load_from_context(ctx, services=services, from_labels=True)
    _check_services(project, services)
    client = engine_client(ctx)
    if stop_first:
        _stop_project(ctx, client, project, services=services, timeout=None)
    stopped = [c for c in container_summary(client, project.name)
               if c["State"] in ("exited", "created", "dead")
               and (not services or c["Labels"].get("com.docker.compose.service") in services)]
    if not stopped:
        click.echo("No stopped containers", err=True)
        return
    names = ", ".join(c["Names"][0].lstrip("/") for c in stopped)
    if not force and not click.confirm(f"Going to remove {names}\nAre you sure?", err=True):
        return
    _each_container(ctx, services, verb="Removing", done="Removed", path="/containers/{id}",
                    states=("exited", "created", "dead"), params={"v": "1" if volumes else "0"}, delete=True)


@main.command("build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("-q", "--quiet", is_flag=True, help="Don't print anything to STDOUT.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.argument("services", nargs=-1)
@click.pass_context
def build_command(ctx: click.Context, no_cache: bool, quiet: bool, pull: bool, services: tuple[str, ...]) -> None:
    """Build or rebuild services."""
    if pull:
        raise ComposeError("--pull needs a registry, and none is reachable from this engine")
    project = load_from_context(ctx, services=services)
    _check_services(project, services)
    client = engine_client(ctx)
    targets = [project.services[n] for n in (services or sorted(project.services))
               if project.services[n].build is not None]
    build = _build_fn(ctx, client, project, no_cache=no_cache, show=not quiet)

    async def build_and_report(service: ServiceConfig) -> None:
        await build(service)
        if not quiet:
            click.echo(f" ✔ Service {service.name}  Built ({image_name(project, service)})", err=True)

    run(build_images(project, targets, build_and_report))
