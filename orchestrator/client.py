"""The `pyswarm` commands' client: finds the node's swarm daemon through its engine and talks to it.

`-H` (or PYNODE_HOST) names the node's engine; its `/info` gives the data root, under which the
daemon's socket lives (`<data-root>/swarm/control.sock`). A node that is in a swarm but whose daemon
is not running (the engine restarted) gets it started again here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from node.client import EngineClient
from node.config import resolve_host
from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.daemon.process import running_pid, spawn_daemon, wait_for_socket
from orchestrator.errors import OrchestratorError


class ControlError(OrchestratorError):
    """The swarm daemon refused a request; the message is its own."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ControlClient:
    def __init__(self, host: str | None = None, *, timeout: float = 60.0) -> None:
        self.engine_url = resolve_host(host)
        with EngineClient(self.engine_url, timeout=10) as engine:
            info = engine.get("/info")
        self.paths = SwarmPaths(data_root=Path(info["DockerRootDir"]))
        self.timeout = timeout

    def in_swarm(self) -> bool:
        return self.paths.state_file.exists()

    def ensure_daemon(self, *, setup: bool = False) -> None:
        """Start the daemon when it should run (the node is in a swarm, or `setup` is about to put it in one)."""
        if running_pid(self.paths) is not None and self.paths.control_socket.exists():
            wait_for_socket(self.paths)
            return
        if not (setup or self.in_swarm()):
            raise ControlError("This node is not part of a swarm", 503)
        spawn_daemon(self.engine_url, self.paths)
        wait_for_socket(self.paths)

    def request(self, method: str, path: str, *, setup: bool = False, **kwargs: Any) -> Any:
        self.ensure_daemon(setup=setup)
        transport = httpx.HTTPTransport(uds=str(self.paths.control_socket))
        with httpx.Client(transport=transport, base_url="http://pyswarm", timeout=self.timeout) as client:
            try:
                response = client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise ControlError(f"the swarm daemon of this node did not answer: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text
            raise ControlError(str(message), response.status_code)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("text/"):
            return response.text
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)
