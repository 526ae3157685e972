"""The images a stack's services run: `build:` services built on this (the manager's) engine, independent
ones at the same time, then every image the engine has pinned to its digest, so that every node runs the
same one (nodes that lack it fetch it from a manager's registry) and a rebuilt image changes the service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from compose.build import build_images, build_service
from compose.container_spec import image_name
from compose.model import Project, ServiceConfig
from node.client import EngineClient
from node.errors import NodeError
from orchestrator.agent.images import pinned_reference

BUILD_PARALLEL = 4
LineSink = Callable[[str, str], None]  # (service, output line) of a build


def build_and_pin(engine_url: str, project: Project, *, on_line: LineSink) -> dict[str, str]:
    """Service name -> the image reference to run."""
    built: dict[str, str] = {}
    services = [s for s in project.services.values() if s.build is not None]
    if services:
        built = asyncio.run(_build_all(engine_url, project, services, on_line=on_line))
    images = {}
    with EngineClient(engine_url, timeout=None) as engine:
        for service in project.services.values():
            ref = built.get(service.name) or service.image
            if ref:
                images[service.name] = pin(engine, ref)
    return images


async def _build_all(engine_url: str, project: Project, services: list[ServiceConfig], *, on_line: LineSink
                     ) -> dict[str, str]:
    limit = asyncio.Semaphore(BUILD_PARALLEL)
    tags: dict[str, str] = {}

    def build_one(service: ServiceConfig) -> str:
        with EngineClient(engine_url, timeout=None) as engine:
            return build_service(engine, project, service, on_line=lambda line: on_line(service.name, line))

    async def build(service: ServiceConfig) -> None:
        async with limit:
            tags[service.name] = await asyncio.to_thread(build_one, service)

    await build_images(project, services, build)
    for service in services:  # services naming one image built it once: it is theirs too
        tags.setdefault(service.name, image_name(project, service))
    return tags


def pin(engine: EngineClient, ref: str) -> str:
    """`name:tag@sha256:<manifest digest>` when this engine has the image; the reference as written otherwise."""
    if "@" in ref:
        return ref
    try:
        return pinned_reference(engine, ref)
    except NodeError:
        return ref
