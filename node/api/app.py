"""The engine's HTTP API: Docker Engine API paths and JSON field names, versioned (/v1.43/...) and not.

Routers live one per resource (system, images, containers, ...). Each module exposes `router`; this
module includes them and maps the engine's errors to Docker's `{"message": ...}` bodies.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from node.engine import Engine
from node.errors import NodeError
from node.version import API_VERSION

log = logging.getLogger(__name__)

# Router modules under node.api, in the order their routes are matched.
ROUTER_MODULES = ["system", "images", "build", "networks", "overlay", "containers", "exec", "volumes", "events"]

_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)$")


class StripVersionPrefix:
    """ASGI middleware: `/v1.43/containers/json` is served by the route for `/containers/json`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _VERSION_PREFIX.match(scope["path"])
            if match:
                scope = dict(scope)
                scope["path"] = match.group(2)
                scope["raw_path"] = match.group(2).encode()
        await self.app(scope, receive, send)


def create_app(engine: Engine) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(title="pynode Engine API", version=API_VERSION, lifespan=lifespan)
    app.state.engine = engine
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"node.api.{name}")
        app.include_router(module.router)
    app.add_exception_handler(NodeError, _node_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_middleware(StripVersionPrefix)
    return app


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def until_shutdown(engine: Engine, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` until the daemon begins to shut down: a stream that follows (events, logs -f, wait) then ends,
    as dockerd's do, instead of holding the shutdown for its whole graceful timeout."""
    stopping = asyncio.ensure_future(engine.stopping.wait())
    try:
        while True:
            step = asyncio.ensure_future(anext(chunks))
            await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                return
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        stopping.cancel()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def _node_error(_request: Request, exc: NodeError) -> JSONResponse:
    return JSONResponse({"message": str(exc)}, status_code=exc.status)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse({"message": f"invalid request: {where}: {first.get('msg', 'bad value')}"}, status_code=400)
