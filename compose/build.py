"""Building a service's image through the engine's Docker-shaped `POST /build` (context sent as a tar)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compose.container_spec import image_name
from compose.errors import ComposeError
from compose.model import Project, ServiceConfig
from node.client import EngineClient
from node.errors import NodeError


class BuildError(ComposeError):
    pass


def build_service(client: EngineClient, project: Project, service: ServiceConfig, *, no_cache: bool = False,
                  on_line: Callable[[str], None] | None = None) -> str:
    """Build `service`'s image, tagged as compose tags it (`image:`, else `<project>-<service>`); returns the tag."""
    if service.build is None:
        raise BuildError(f"service {service.name} has no build section")
    tag = image_name(project, service)
    context = Path(service.build.context)
    if not context.is_dir():
        raise BuildError(f"service {service.name}: build context {context} is not a directory")
    dockerfile = context / (service.build.dockerfile or "Dockerfile")
    labels = {str(k): str(v) for k, v in (service.raw.get("build") or {}).get("labels", {}).items()} \
        if isinstance((service.raw.get("build") or {}).get("labels"), dict) else None
    try:
        for message in client.build(context, dockerfile=dockerfile, tags=[tag], target=service.build.target,
                                    build_args={k: v for k, v in service.build.args.items() if v is not None},
                                    no_cache=no_cache, labels=labels):
            text = message.get("stream")
            if text and on_line is not None:
                on_line(str(text))
    except NodeError as exc:
        raise BuildError(f"service {service.name}: build failed: {exc}") from exc
    return tag
