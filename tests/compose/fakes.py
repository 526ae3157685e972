"""An in-memory engine for the applier's unit tests: the Backend protocol, recording every call."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compose.backend import EngineError
from compose.planner import ONEOFF_LABEL, PROJECT_LABEL, SERVICE_LABEL


@dataclass
class FakeContainer:
    id: str
    name: str
    body: Mapping[str, Any]
    state: str = "created"
    exit_code: int = 0
    health: list[str] = field(default_factory=list)  # statuses to report, one per inspect; the last sticks
    networks: list[str] = field(default_factory=list)

    @property
    def labels(self) -> Mapping[str, str]:
        return self.body.get("Labels") or {}


class FakeBackend:
    """`exits[service]` makes a started container exit at once with that code; `health[service]` is the
    sequence of health statuses its containers report; `delay` makes each call take that long."""

    def __init__(self, *, exits: Mapping[str, int] = {}, health: Mapping[str, Sequence[str]] = {},
                 images: Sequence[str] = ("busybox",), delay: float = 0.0) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.networks: dict[str, Mapping[str, Any]] = {}
        self.volumes: dict[str, Mapping[str, Any]] = {}
        self.images = set(images)
        self.exits = dict(exits)
        self.health = {k: list(v) for k, v in health.items()}
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1)

    async def _call(self, what: str, ref: str) -> None:
        self.calls.append((what, ref))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1

    def _get(self, ref: str) -> FakeContainer:
        for c in self.containers.values():
            if ref in (c.id, c.name):
                return c
        raise EngineError(f"No such container: {ref}")

    def _summary(self, c: FakeContainer) -> dict[str, Any]:
        return {"Id": c.id, "Names": [f"/{c.name}"], "State": c.state, "Labels": dict(c.labels)}

    async def list_containers(self, project: str, *, service: str | None = None,
                              oneoff: bool | None = None) -> list[dict[str, Any]]:
        out = []
        for c in self.containers.values():
            if c.labels.get(PROJECT_LABEL) != project:
                continue
            if service is not None and c.labels.get(SERVICE_LABEL) != service:
                continue
            if oneoff is not None and (c.labels.get(ONEOFF_LABEL) == "True") != oneoff:
                continue
            out.append(self._summary(c))
        return out

    async def inspect_container(self, ref: str) -> dict[str, Any] | None:
        try:
            c = self._get(ref)
        except EngineError:
            return None
        state: dict[str, Any] = {"Status": c.state, "ExitCode": c.exit_code}
        if c.health:
            state["Health"] = {"Status": c.health.pop(0) if len(c.health) > 1 else c.health[0]}
        return {"Id": c.id, "Name": f"/{c.name}", "State": state, "Config": {"Labels": dict(c.labels)}}

    async def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        await self._call("create", name)
        if any(c.name == name for c in self.containers.values()):
            raise EngineError(f'Conflict. The container name "/{name}" is already in use')
        if body["Image"] not in self.images:
            raise EngineError(f"No such image: {body['Image']}")
        cid = f"id{next(self._ids)}"
        service = (body.get("Labels") or {}).get(SERVICE_LABEL, "")
        self.containers[cid] = FakeContainer(id=cid, name=name, body=body, health=list(self.health.get(service, [])))
        return cid

    async def connect_network(self, network: str, container: str, endpoint: Mapping[str, Any]) -> None:
        await self._call("connect", f"{network}:{container}")
        self._get(container).networks.append(network)

    async def start_container(self, ref: str) -> None:
        c = self._get(ref)
        await self._call("start", c.name)
        service = c.labels.get(SERVICE_LABEL, "")
        if service in self.exits:
            c.state, c.exit_code = "exited", self.exits[service]
        else:
            c.state = "running"

    async def stop_container(self, ref: str, *, timeout: int | None = None) -> None:
        c = self._get(ref)
        await self._call("stop", c.name)
        if c.state == "running":
            c.state, c.exit_code = "exited", 143

    async def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self._get(ref)
        await self._call("remove", c.name)
        del self.containers[c.id]

    async def list_networks(self, project: str) -> list[dict[str, Any]]:
        return [n for n in self.networks.values() if (n.get("Labels") or {}).get(PROJECT_LABEL) == project]

    async def create_network(self, body: Mapping[str, Any]) -> None:
        await self._call("create_network", body["Name"])
        self.networks[body["Name"]] = body

    async def remove_network(self, name: str) -> None:
        await self._call("remove_network", name)
        self.networks.pop(name, None)

    async def list_volumes(self, project: str) -> list[dict[str, Any]]:
        return [v for v in self.volumes.values() if (v.get("Labels") or {}).get(PROJECT_LABEL) == project]

    async def create_volume(self, body: Mapping[str, Any]) -> None:
        await self._call("create_volume", body["Name"])
        self.volumes[body["Name"]] = body

    async def remove_volume(self, name: str) -> None:
        await self._call("remove_volume", name)
        self.volumes.pop(name, None)

    async def inspect_image(self, ref: str) -> dict[str, Any] | None:
        return {"Id": ref} if ref in self.images else None

    def index(self, what: str, ref: str) -> int:
        return self.calls.index((what, ref))
