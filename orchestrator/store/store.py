"""The typed face of the store: reads from the local replica, writes through a `Proposer`, watches."""

from __future__ import annotations

import asyncio
import builtins
import queue
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from orchestrator.model import StoredObject
from orchestrator.store.proposer import Proposer
from orchestrator.store.state import Change, Commit, ObjectKind, Op, StateMachine

T = TypeVar("T", bound=StoredObject)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """The replica was replaced by a snapshot: re-list what you track."""

    revision: int


WatchEvent = Change | Reset


class Store:
    """Versioned objects. Writes commit through the proposer; reads see this process's replica."""

    def __init__(self, proposer: Proposer, *, timeout: float = 5.0) -> None:
        self._proposer = proposer
        self._timeout = timeout

    @property
    def machine(self) -> StateMachine:
        return self._proposer.machine

    @property
    def revision(self) -> int:
        return self.machine.revision

    def get(self, obj_type: type[T], obj_id: str) -> T | None:
        return self.machine.get(obj_type, obj_id)

    def list(self, obj_type: type[T]) -> list[T]:
        return self.machine.list(obj_type)

    def find(self, obj_type: type[T], predicate: Callable[[T], bool]) -> builtins.list[T]:
        return [obj for obj in self.machine.list(obj_type) if predicate(obj)]

    def create(self, obj: T) -> T:
        return self._single(Op.create(obj))  # type: ignore[return-value]

    def update(self, obj: T) -> T:
        """Store `obj`; its `version` must be the stored one, else `VersionConflict`."""
        return self._single(Op.update(obj))  # type: ignore[return-value]

    def delete(self, obj_type: type[StoredObject], obj_id: str, *, version: int | None = None) -> None:
        self._single(Op.delete(obj_type, obj_id, version=version))

    def transact(self, ops: Iterable[Op], *, timeout: float | None = None) -> Commit:
        """Apply `ops` atomically in one log entry: all of them or (on any error) none."""
        wire = [op.to_wire() for op in ops]
        return self._proposer.propose(wire, timeout=self._timeout if timeout is None else timeout)

    def digest(self) -> str:
        return self.machine.digest()

    def watch(self, *, kinds: Iterable[ObjectKind] | None = None) -> Watch:
        return Watch(self.machine, kinds=kinds)

    def watch_async(self, loop: asyncio.AbstractEventLoop, *, kinds: Iterable[ObjectKind] | None = None) -> AsyncWatch:
        return AsyncWatch(self.machine, loop, kinds=kinds)

    def _single(self, op: Op) -> StoredObject:
        commit = self.transact([op])
        return commit.changes[0].obj


class _WatchBase:
    def __init__(self, machine: StateMachine, *, kinds: Iterable[ObjectKind] | None) -> None:
        self._machine = machine
        self._kinds = frozenset(kinds) if kinds is not None else None
        machine.add_listener(self._on_changes)
        machine.add_reset_listener(self._on_reset)

    def _on_changes(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if self._kinds is None or change.kind in self._kinds:
                self._deliver(change)

    def _on_reset(self) -> None:
        self._deliver(Reset(revision=self._machine.revision))

    def _deliver(self, event: WatchEvent) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._machine.remove_listener(self._on_changes)
        self._machine.remove_reset_listener(self._on_reset)


class Watch(_WatchBase):
    """Committed changes in commit order, through a thread-safe queue."""

    def __init__(self, machine: StateMachine, *, kinds: Iterable[ObjectKind] | None = None) -> None:
        self._queue: queue.SimpleQueue[WatchEvent] = queue.SimpleQueue()
        super().__init__(machine, kinds=kinds)

    def _deliver(self, event: WatchEvent) -> None:
        self._queue.put(event)

    def get(self, timeout: float | None = None) -> WatchEvent:
        """The next event; `queue.Empty` after `timeout` seconds."""
        return self._queue.get(timeout=timeout)

    def drain(self) -> builtins.list[WatchEvent]:
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncWatch(_WatchBase):
    """Committed changes in commit order, delivered to `loop` with `call_soon_threadsafe`."""

    def __init__(
        self,
        machine: StateMachine,
        loop: asyncio.AbstractEventLoop,
        *,
        kinds: Iterable[ObjectKind] | None = None,
    ) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        super().__init__(machine, kinds=kinds)

    def _deliver(self, event: WatchEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.close()

    async def get(self) -> WatchEvent:
        return await self._queue.get()

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        return await self._queue.get()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
