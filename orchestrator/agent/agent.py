"""The agent's session: long-poll the leader's dispatcher for assignments (each call is a heartbeat),
run them with the `Executor`, send status reports. A follower answers 503 naming the leader; an
unreachable manager makes the agent try the next one it knows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from node.client import EngineClient
from orchestrator.agent.executor import Executor, Work, work_from
from orchestrator.agent.images import ensure_image
from orchestrator.daemon import peers
from orchestrator.daemon.localstate import SwarmPaths

log = logging.getLogger(__name__)
RECONCILE_INTERVAL = 1.0


class SessionEnded(Exception):
    """The managers said this node is no longer part of the swarm."""


class Agent:
    def __init__(self, *, paths: SwarmPaths, engine_url: str, node_id: str, hostname: str, addr: str,
                 managers: list[str], on_reply: Callable[[dict[str, Any]], Awaitable[None]],
                 on_removed: Callable[[], None] | None = None) -> None:
        self.paths = paths
        self.node_id = node_id
        self.hostname = hostname
        self.addr = addr
        self.managers = list(managers)
        self.current: str | None = None
        self.executor = Executor(engine_url, node_id, local_ip=addr, image_source=self._ensure_image)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.work = Work()
        self.connected = False
        self._synced = False  # set by the first session reply: until then the agent does not touch containers
        self._on_reply = on_reply
        self._on_removed = on_removed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, dict[str, Any]] = {}

    def _ensure_image(self, client: EngineClient, image: str) -> None:
        """The task's image on this engine: fetched from a manager's registry when missing (blocking)."""
        ensure_image(client, image, managers=list(self.managers), paths=self.paths)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.executor.on_removed = self._wake_soon
        self._task = self._loop.create_task(self._run())

    def _wake_soon(self) -> None:
        """From an executor thread: a task's container is gone, report its shutdown without waiting a tick."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.executor.close()

    async def _run(self) -> None:
        async with peers.async_client(self.paths, timeout=60.0) as client:
            await asyncio.gather(self._session(client), self._work(client))

    def _next_manager(self) -> str | None:
        if not self.managers:
            return None
        others = [m for m in self.managers if m != self.current] or self.managers
        return random.choice(others)

    async def _session(self, client: httpx.AsyncClient) -> None:
        known = ""
        while True:
            target = self.current or self._next_manager()
            if target is None:
                await asyncio.sleep(1.0)
                continue
            try:
                response = await client.post(
                    peers.url(target, "/dispatcher/session"), extensions=peers.SNI,
                    json={"known": known, "hostname": self.hostname, "addr": self.addr, "wait": bool(known)})
            except (httpx.TransportError, OSError) as exc:
                log.info("session with %s failed: %s", target, exc)
                self.connected = False
                self.current = self._next_manager()
                known = ""
                await asyncio.sleep(0.3)
                continue
            if response.status_code == 503:
                message = peers.message_of(response)
                hint = message.rsplit("leader: ", 1)[-1] if "leader: " in message else ""
                self.current = hint if hint and hint != "unknown" and hint != target else self._next_manager()
                known = ""
                await asyncio.sleep(0.2)
                continue
            if response.status_code == 404:
                log.warning("session refused: %s", peers.message_of(response))
                if "was removed" in peers.message_of(response) and self._on_removed is not None:
                    self._on_removed()
                await asyncio.sleep(2.0)
                continue
            if response.status_code != 200:
                log.warning("session with %s: %s", target, peers.message_of(response))
                self.current = self._next_manager()
                await asyncio.sleep(1.0)
                continue
            reply = response.json()
            self.current = target
            self.connected = True
            if reply["digest"] != known or not self._synced:
                self.work = work_from(reply)
                self._synced = True
                known = reply["digest"]
                self._wake.set()
            self.managers = list(reply.get("managers") or self.managers)
            await self._on_reply(reply)

    async def _work(self, client: httpx.AsyncClient) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RECONCILE_INTERVAL)
            self._wake.clear()
            if not self._synced:  # no assignments known yet: an empty list would remove every task's container
                continue
            try:
                reports = await asyncio.to_thread(self.executor.reconcile, self.work)
            except Exception as exc:  # noqa: BLE001 - the engine may be restarting; try again
                log.warning("reconciling tasks failed: %s", exc)
                continue
            for report in reports:
                self._pending[report["task_id"]] = report
            if self._pending and self.current and self.connected:
                await self._send(client, self.current)

    async def _send(self, client: httpx.AsyncClient, target: str) -> None:
        reports = list(self._pending.values())
        try:
            response = await client.post(peers.url(target, "/dispatcher/status"), extensions=peers.SNI,
                                         json={"reports": reports})
        except (httpx.TransportError, OSError) as exc:
            log.info("status report to %s failed: %s", target, exc)
            return
        if response.status_code == 200:
            for report in reports:
                if self._pending.get(report["task_id"]) is report:
                    del self._pending[report["task_id"]]
