"""uvicorn servers for the control API: the local unix socket, and mutual TLS on port 2377.

uvicorn does not hand the peer's certificate to the app, so a small protocol subclass puts it (and
whether the connection came through the local socket) into each request's `scope["state"]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.daemon.localstate import CONTROL_PORT, SwarmPaths

log = logging.getLogger(__name__)


def _protocol(*, local: bool) -> type[H11Protocol]:
    class PeerProtocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            state = dict(self.app_state)
            state["local"] = local
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                state["peer_cert"] = ssl_object.getpeercert(binary_form=True)
            self.app_state = state

    return PeerProtocol


class _Server(uvicorn.Server):
    """The daemon handles signals itself (several servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class ApiServer:
    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises what stopped it
                raise OSError("the API server stopped at start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self.task, 5.0)


def local_server(app: FastAPI, paths: SwarmPaths) -> ApiServer:
    with contextlib.suppress(FileNotFoundError):
        paths.control_socket.unlink()
    config = uvicorn.Config(app, uds=str(paths.control_socket), http=_protocol(local=True), log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = ApiServer(_Server(config))
    return server


def tls_server(app: FastAPI, paths: SwarmPaths, *, host: str = "0.0.0.0", port: int = CONTROL_PORT) -> ApiServer:
    config = uvicorn.Config(app, host=host, port=port, http=_protocol(local=False), log_level="warning",
                            lifespan="off", ssl_certfile=str(paths.node_cert), ssl_keyfile=str(paths.node_key),
                            ssl_ca_certs=str(paths.ca_cert), ssl_cert_reqs=ssl.CERT_OPTIONAL,
                            timeout_graceful_shutdown=1)
    return ApiServer(_Server(config))


def restrict_socket(paths: SwarmPaths) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.chmod(paths.control_socket, 0o600)
