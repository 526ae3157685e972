"""The dispatcher (leader only): agent sessions, heartbeats, assignments and task status reports.

An agent long-polls `session`: the call records a heartbeat and returns the tasks assigned to the
node as soon as they differ from what the agent already has (or after one heartbeat period).
Status reports arrive separately and are written in one transaction per report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.model import Node, NodeStatus, Service, Task, TaskState, TaskStatus, to_dict
from orchestrator.store import Op, Store, VersionConflict


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    task_id: str
    state: TaskState
    message: str = ""
    err: str = ""


class Dispatcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.last_seen: dict[str, float] = {}
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A committed change arrived: wake the sessions waiting for their assignments to change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def heartbeat(self, node_id: str) -> None:
        self.last_seen[node_id] = time.time()

    def assignments(self, node_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The tasks the node must act on (desired running, or still running), with a digest of them."""
        names = {s.id: s.spec.name for s in self.store.list(Service)}
        tasks = sorted((t for t in self.store.list(Task) if t.node_id == node_id
                        and t.status.state >= TaskState.ASSIGNED
                        and (t.desired_state <= TaskState.RUNNING or not t.status.state.is_terminal())),
                       key=lambda t: t.id)
        digest = hashlib.sha256(",".join(f"{t.id}:{t.version}" for t in tasks).encode()).hexdigest()[:16]
        return digest, [{"task": to_dict(t), "service_name": names.get(t.service_id, "")} for t in tasks]

    async def wait_for_change(self, node_id: str, known: str, timeout: float) -> tuple[str, list[dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while True:
            digest, tasks = self.assignments(node_id)
            left = deadline - time.monotonic()
            if digest != known or left <= 0:
                return digest, tasks
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    def mark_ready(self, node_id: str, *, hostname: str, addr: str) -> Node | None:
        """The node's first heartbeat with this leader: READY (and its address as seen)."""
        node = self.store.get(Node, node_id)
        if node is None:
            return None
        if node.status is not NodeStatus.READY or (hostname and node.hostname != hostname) or (
                addr and node.addr != addr):
            node = self.store.update(dataclasses.replace(
                node, status=NodeStatus.READY, status_message="", hostname=hostname or node.hostname,
                addr=addr or node.addr, updated_at=time.time()))
        return node

    def report(self, node_id: str, reports: Sequence[StatusReport]) -> None:
        for _ in range(5):
            ops = []
            now = time.time()
            for report in reports:
                task = self.store.get(Task, report.task_id)
                if task is None or task.node_id != node_id or report.state <= task.status.state:
                    continue
                status = TaskStatus(state=report.state, message=report.message, err=report.err, timestamp=now)
                ops.append(Op.update(dataclasses.replace(task, status=status, updated_at=now)))
            if not ops:
                return
            try:
                self.store.transact(ops)
                return
            except VersionConflict:
                continue
