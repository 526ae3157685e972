"""Building a service's image through the engine's Docker-shaped `POST /build` (context sent as a tar).

`build:` as compose reads it: context, dockerfile or dockerfile_inline, args, target, labels, tags (extra
names beside the service's image) and secrets (the project's `secrets:` with a file or environment source,
seen by `RUN --mount=type=secret,id=<target or source>`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compose.container_spec import image_name
from compose.errors import ComposeError
from compose.model import Project, ServiceConfig
from node.client import EngineClient
from node.errors import NodeError


class BuildError(ComposeError):
    pass


def build_service(client: EngineClient, project: Project, service: ServiceConfig, *, no_cache: bool = False,
                  on_line: Callable[[str], None] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Build `service`'s image, tagged as compose tags it (`image:`, else `<project>-<service>`, then the
    build's `tags`); returns the first tag."""
    if service.build is None:
        raise BuildError(f"service {service.name} has no build section")
    raw: dict[str, Any] = dict(service.raw.get("build") or {})
    tag = image_name(project, service)
    context = Path(service.build.context)
    if not context.is_dir():
        raise BuildError(f"service {service.name}: build context {context} is not a directory")
    labels = {str(k): str(v) for k, v in raw["labels"].items()} if isinstance(raw.get("labels"), dict) else None
    tags = list(dict.fromkeys([tag, *(str(t) for t in raw.get("tags") or [])]))
    secrets = build_secrets(project, service, os.environ if environ is None else environ)
    try:
        with _dockerfile(context, service, raw) as dockerfile:
            for message in client.build(context, dockerfile=dockerfile, tags=tags, target=service.build.target,
                                        build_args={k: v for k, v in service.build.args.items() if v is not None},
                                        no_cache=no_cache or bool(raw.get("no_cache")), labels=labels,
                                        secrets=secrets, network=raw.get("network")):
                text = message.get("stream")
                if text and on_line is not None:
                    on_line(str(text))
    except NodeError as exc:
        raise BuildError(f"service {service.name}: build failed: {exc}") from exc
    return tag


async def build_images(project: Project, services: Iterable[ServiceConfig],
                       build: Callable[[ServiceConfig], Coroutine[Any, Any, None]]) -> None:
    """Each service's image once, all at the same time, as compose's bake does: `build` holds the limit."""
    first: dict[str, ServiceConfig] = {}
    for service in services:
        if service.build is not None:
            first.setdefault(image_name(project, service), service)
    async with asyncio.TaskGroup() as group:
        for service in first.values():
            group.create_task(build(service))


def build_secrets(project: Project, service: ServiceConfig, environ: Mapping[str, str]) -> dict[str, bytes]:
    """The build's secrets by the id a Dockerfile names them with: the ref's target, else its source."""
    out: dict[str, bytes] = {}
    for ref in (service.raw.get("build") or {}).get("secrets") or []:
        ref = {"source": ref} if isinstance(ref, str) else dict(ref)
        source = str(ref["source"])
        resource = project.secrets.get(source)
        where = f"service {service.name}: build secret {source}"
        if resource is None:
            raise BuildError(f"{where} is not defined")
        if resource.raw.get("file"):
            try:
                content = Path(str(resource.raw["file"])).read_bytes()
            except OSError as exc:
                raise BuildError(f"{where}: cannot read {resource.raw['file']}: {exc.strerror}") from None
        elif resource.raw.get("environment"):
            variable = str(resource.raw["environment"])
            if variable not in environ:
                raise BuildError(f"{where}: environment variable {variable} is not set")
            content = environ[variable].encode()
        else:
            raise BuildError(f"{where}: a build secret needs a file or environment source")
        out[str(ref.get("target") or source)] = content
    return out


@contextmanager
def _dockerfile(context: Path, service: ServiceConfig, raw: Mapping[str, Any]) -> Iterator[Path]:
    """The Dockerfile to send: `dockerfile_inline` written to a file outside the context, else the named one."""
    inline = raw.get("dockerfile_inline")
    if inline is None:
        yield context / (service.build.dockerfile if service.build and service.build.dockerfile else "Dockerfile")
        return
    fd, name = tempfile.mkstemp(prefix=f"{service.name}.", suffix=".Dockerfile")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(str(inline))
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
