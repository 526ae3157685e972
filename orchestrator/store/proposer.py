"""The seam between the store and consensus: a `Proposer` commits transactions to a replica."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from orchestrator.store.state import Commit, Rejection, StateMachine, WireOp


class Proposer(Protocol):
    """Commits transactions; `machine` is this process's replica, which committed writes reach."""

    @property
    def machine(self) -> StateMachine: ...

    def propose(self, ops: Sequence[WireOp], *, timeout: float | None = None) -> Commit:
        """Commit `ops` atomically as one log entry; raise a `StoreError` when it is refused or times out."""
        ...

    def close(self) -> None: ...


class LocalProposer:
    """A single-process proposer for tests and single-node use: every proposal commits at once."""

    def __init__(self, machine: StateMachine | None = None) -> None:
        self._machine = machine or StateMachine()
        self._lock = threading.Lock()

    @property
    def machine(self) -> StateMachine:
        return self._machine

    def propose(self, ops: Sequence[WireOp], *, timeout: float | None = None) -> Commit:
        with self._lock:
            result = self._machine.apply(list(ops))
        return raise_rejection(result)

    def close(self) -> None:
        pass


def raise_rejection(result: Commit | Rejection) -> Commit:
    if isinstance(result, Rejection):
        raise result.to_exception()
    return result
