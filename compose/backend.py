"""The engine as the applier sees it: a small async protocol, and its implementation over EngineClient.

`EngineBackend` runs the blocking httpx client in a thread pool whose size is the caller's parallel
limit; the fake in tests/compose/fakes.py implements the same protocol in memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from compose.errors import ComposeError
from compose.planner import ONEOFF_LABEL, PROJECT_LABEL, SERVICE_LABEL
from node.client import EngineClient
from node.errors import Conflict, NodeError, NotFound

T = TypeVar("T")


class EngineError(ComposeError):
    """The engine refused a request; the message is the engine's."""


class ResourceInUse(EngineError):
    """A network (or volume) still used by containers outside the plan, such as a project's orphans."""


class Backend(Protocol):
    async def list_containers(self, project: str, *, service: str | None = None,
                              oneoff: bool | None = None) -> list[dict[str, Any]]: ...
    async def inspect_container(self, ref: str) -> dict[str, Any] | None: ...
    async def create_container(self, name: str, body: Mapping[str, Any]) -> str: ...
    async def connect_network(self, network: str, container: str, endpoint: Mapping[str, Any]) -> None: ...
    async def start_container(self, ref: str) -> None: ...
    async def stop_container(self, ref: str, *, timeout: int | None = None) -> None: ...
    async def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False) -> None: ...
    async def list_networks(self, project: str) -> list[dict[str, Any]]: ...
    async def create_network(self, body: Mapping[str, Any]) -> None: ...
    async def remove_network(self, name: str) -> None: ...
    async def list_volumes(self, project: str) -> list[dict[str, Any]]: ...
    async def create_volume(self, body: Mapping[str, Any]) -> None: ...
    async def remove_volume(self, name: str) -> None: ...
    async def inspect_image(self, ref: str) -> dict[str, Any] | None: ...


def _label_filters(project: str, *, service: str | None = None, oneoff: bool | None = None) -> str:
    labels = [f"{PROJECT_LABEL}={project}"]
    if service is not None:
        labels.append(f"{SERVICE_LABEL}={service}")
    if oneoff is not None:
        labels.append(f"{ONEOFF_LABEL}={'True' if oneoff else 'False'}")
    return json.dumps({"label": labels})


class EngineBackend:
    """The real engine. `parallel` bounds the requests in flight (threads of the pool)."""

    def __init__(self, client: EngineClient, *, parallel: int = 16) -> None:
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pycompose")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except NotFound:
            raise
        except NodeError as exc:
            raise EngineError(str(exc)) from exc

    async def list_containers(self, project: str, *, service: str | None = None,
                              oneoff: bool | None = None) -> list[dict[str, Any]]:
        params = {"all": "1", "filters": _label_filters(project, service=service, oneoff=oneoff)}
        found: list[dict[str, Any]] = await self._run(self.client.get, "/containers/json", params=params)
        return found

    async def inspect_container(self, ref: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self._run(self.client.get, f"/containers/{ref}/json")
        except NotFound:
            return None
        return info

    async def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        try:
            created = await self._run(self.client.post, "/containers/create", params={"name": name}, json=body)
        except NotFound as exc:
            raise EngineError(str(exc)) from exc
        return str(created["Id"])

    async def connect_network(self, network: str, container: str, endpoint: Mapping[str, Any]) -> None:
        await self._checked(self.client.post, f"/networks/{network}/connect",
                            json={"Container": container, "EndpointConfig": dict(endpoint)})

    async def start_container(self, ref: str) -> None:
        await self._checked(self.client.post, f"/containers/{ref}/start")

    async def stop_container(self, ref: str, *, timeout: int | None = None) -> None:
        params = {"t": str(timeout)} if timeout is not None else {}
        await self._tolerant(self.client.post, f"/containers/{ref}/stop", params=params)

    async def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        params = {"force": "1" if force else "0", "v": "1" if volumes else "0"}
        await self._tolerant(self.client.delete, f"/containers/{ref}", params=params)

    async def list_networks(self, project: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._run(self.client.get, "/networks",
                                                      params={"filters": _label_filters(project)})
        return found

    async def create_network(self, body: Mapping[str, Any]) -> None:
        await self._checked(self.client.post, "/networks/create", json=dict(body))

    async def remove_network(self, name: str) -> None:
        """Raises ResourceInUse while containers are still attached to it."""
        try:
            await self._tolerant(self.client.delete, f"/networks/{name}")
        except EngineError as exc:
            if isinstance(exc.__cause__, Conflict):
                raise ResourceInUse(str(exc)) from exc
            raise

    async def list_volumes(self, project: str) -> list[dict[str, Any]]:
        found = await self._run(self.client.get, "/volumes", params={"filters": _label_filters(project)})
        return list(found.get("Volumes") or [])

    async def create_volume(self, body: Mapping[str, Any]) -> None:
        await self._checked(self.client.post, "/volumes/create", json=dict(body))

    async def remove_volume(self, name: str) -> None:
        await self._tolerant(self.client.delete, f"/volumes/{name}")

    async def inspect_image(self, ref: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self._run(self.client.get, f"/images/{ref}/json")
        except NotFound:
            return None
        return info

    async def _checked(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            await self._run(fn, *args, **kwargs)
        except NotFound as exc:
            raise EngineError(str(exc)) from exc

    async def _tolerant(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Stops and removals of something already gone succeed, as `ensure_*` would."""
        try:
            await self._run(fn, *args, **kwargs)
        except NotFound:
            return
