"""Building a service's image through the engine's Docker-shaped `POST /build` (context sent as a tar)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from compose.backend import EngineError, build_image
from compose.container_spec import image_name
from compose.errors import ComposeError
from compose.model import Project, ServiceConfig
from node.client import EngineClient
from node.errors import NotFound


class BuildError(ComposeError):
    pass


def build_service(client: EngineClient, project: Project, service: ServiceConfig, *, no_cache: bool = False,
                  on_line: Callable[[str], None] | None = None) -> str:
    """Build `service`'s image, tagged as compose tags it; returns the tag."""
    from node.builder.context import load_ignore, write_context_tar  # only when building (a heavy import)

    if service.build is None:
        raise BuildError(f"service {service.name} has no build section")
    tag = image_name(project, service)
    context = Path(service.build.context)
    if not context.is_dir():
        raise BuildError(f"service {service.name}: build context {context} is not a directory")
    dockerfile = service.build.dockerfile or "Dockerfile"
    with tempfile.TemporaryFile() as tar:
        write_context_tar(context, tar, ignore=load_ignore(context, dockerfile=dockerfile), dockerfile=dockerfile)
        tar.seek(0)
        try:
            for line in build_image(client, context_tar=tar, tag=tag, dockerfile=dockerfile,
                                    args=service.build.args, target=service.build.target, no_cache=no_cache):
                if on_line is not None:
                    on_line(line)
        except NotFound as exc:
            if "Not Found" in str(exc):
                raise BuildError(f"service {service.name}: image {tag} must be built, and this engine has no "
                                 "builder yet (POST /build)") from exc
            raise BuildError(f"service {service.name}: {exc}") from exc
        except EngineError as exc:
            raise BuildError(f"service {service.name}: build failed: {exc}") from exc
    return tag
