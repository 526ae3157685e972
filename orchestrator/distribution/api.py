"""The registry's routes on the control API: `GET /v2/`, `GET|HEAD /v2/<name>/manifests/<reference>`,
`GET|HEAD /v2/<name>/blobs/<digest>`. Read-only; errors in the distribution spec's JSON shape.

Who may read: the node's local socket, and over TLS any certificate of this cluster, worker or manager (a
worker must be able to fetch what its tasks run). Only a manager serves: elsewhere every route answers
UNAVAILABLE.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from orchestrator.distribution.cache import BlobCache
from orchestrator.distribution.errors import Denied, RegistryError, Unavailable
from orchestrator.distribution.source import ImageSource, check_name
from orchestrator.security import SecurityError, identity_from_certificate

if TYPE_CHECKING:
    from orchestrator.daemon.daemon import Daemon

log = logging.getLogger(__name__)
_API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def mount_registry(app: FastAPI, daemon: Daemon) -> None:
    """Add the registry's routes and error answers to the control API `app` of `daemon`."""
    source = ImageSource(engine_url=daemon.engine_url, cache=BlobCache(daemon.paths.root / "distribution"))
    app.add_exception_handler(RegistryError, _registry_error)  # type: ignore[arg-type]
    app.include_router(_router(daemon, source))


def _router(daemon: Daemon, source: ImageSource) -> APIRouter:
    router = APIRouter()

    @router.get("/v2/")
    def version_check(request: Request) -> Response:
        authorize(request, daemon)
        return JSONResponse({}, headers=_API_VERSION)

    @router.api_route("/v2/{name:path}/manifests/{reference}", methods=["GET", "HEAD"])
    def manifest(request: Request, name: str, reference: str) -> Response:
        reader = authorize(request, daemon)
        served = source.manifest(name, reference)
        shown = f"{name}@{reference}" if ":" in reference else f"{name}:{reference}"
        log.info("registry: manifest %s (%s) to %s", shown, served.digest[:19], reader)
        headers = {**_API_VERSION, "Docker-Content-Digest": served.digest, "Content-Length": str(len(served.data)),
                   "ETag": f'"{served.digest}"'}
        body = b"" if request.method == "HEAD" else served.data
        return Response(content=body, media_type=served.media_type, headers=headers)

    @router.api_route("/v2/{name:path}/blobs/{digest}", methods=["GET", "HEAD"])
    def blob(request: Request, name: str, digest: str) -> Response:
        reader = authorize(request, daemon)
        check_name(name)
        path, size = source.blob(digest)
        if request.method == "GET":
            log.info("registry: blob %s (%d bytes) to %s", digest, size, reader)
        return FileResponse(path, media_type="application/octet-stream",
                            headers={**_API_VERSION, "Docker-Content-Digest": digest})

    return router


def authorize(request: Request, daemon: Daemon) -> str:
    """Who reads (for the log): `local`, or the node id of a verified certificate of this cluster."""
    if daemon.manager is None or daemon.state is None:
        raise Unavailable("this node is not a swarm manager: it serves no images")
    state = request.scope.get("state", {})
    if state.get("local"):
        return "local"
    der = state.get("peer_cert")
    if not der:
        raise Denied("a node certificate of this cluster is required (mutual TLS)")
    try:
        identity = identity_from_certificate(der)
    except SecurityError as exc:
        raise Denied(f"unusable certificate: {exc}") from None
    if identity.cluster_id != daemon.state.cluster_id:
        raise Denied("certificate from another cluster")
    return f"node {identity.node_id}"


async def _registry_error(request: Request, exc: RegistryError) -> JSONResponse:
    body = {"errors": [{"code": exc.code, "message": str(exc), "detail": None}]}
    return JSONResponse(body, status_code=exc.status, headers=_API_VERSION)
