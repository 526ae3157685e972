"""In-process event bus behind `/events`: every subsystem publishes Docker-shaped event messages here."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any


class EventBus:
    """Fan-out of events to subscribers, safe to publish from any thread; keeps a short history for `since`."""

    def __init__(self, *, history: int = 1024) -> None:
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = set()
        self._lock = threading.Lock()

    def publish(self, *, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> None:
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": type_, "Action": action, "status": action, "id": actor_id,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local", "time": now // 1_000_000_000, "timeNano": now,
        }
        if type_ == "container" and attributes and "image" in attributes:
            event["from"] = attributes["image"]
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    async def subscribe(self, *, since_ns: int | None = None,
                        until_ns: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Events from `since_ns` (kept history first) until `until_ns`, or for ever without it. An `until` in
        the past replays the history between the two and ends, as `docker events --since --until` does."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (loop, queue)
        with self._lock:
            past = [e for e in self._history if since_ns is not None and e["timeNano"] >= since_ns]
            self._subscribers.add(entry)
        try:
            for event in past:
                if until_ns is not None and event["timeNano"] > until_ns:
                    return
                yield event
            while True:
                if until_ns is None:
                    yield await queue.get()
                    continue
                left = (until_ns - time.time_ns()) / 1e9
                if left <= 0:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    return
                if event["timeNano"] > until_ns:
                    return
                if since_ns is None or event["timeNano"] >= since_ns:
                    yield event
        finally:
            with self._lock:
                self._subscribers.discard(entry)
