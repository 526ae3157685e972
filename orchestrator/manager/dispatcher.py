"""The dispatcher (leader only): agent sessions, heartbeats, assignments and task status reports.

An agent long-polls `session`: the call records a heartbeat and returns the node's assignments as soon
as they differ from what the agent already has (or after one heartbeat period): its tasks, the overlay
networks they use with their peers and service records (netstate.py), and the plain content of the
secrets and configs its tasks mount (unsealed for this node only; the session is mutual TLS).
Status reports arrive separately and are written in one transaction per report.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.manager.netstate import digest_of, node_networks
from orchestrator.model import Config, Network, Node, NodeStatus, Secret, Service, Task, TaskState, TaskStatus, to_dict
from orchestrator.store import Op, Store, VersionConflict

log = logging.getLogger(__name__)
Unsealer = Callable[[Secret | Config], bytes]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    task_id: str
    state: TaskState
    message: str = ""
    err: str = ""


class Dispatcher:
    def __init__(self, store: Store, *, unseal: Unsealer | None = None) -> None:
        self.store = store
        self._unseal = unseal
        self.last_seen: dict[str, float] = {}
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A committed change arrived: wake the sessions waiting for their assignments to change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def heartbeat(self, node_id: str) -> None:
        self.last_seen[node_id] = time.time()

    def assignments(self, node_id: str) -> tuple[str, dict[str, Any]]:
        """What the node must act on, with a digest of it: the tasks (desired running, or still running),
        the networks they use, the secrets and configs they mount."""
        services = self.store.list(Service)
        all_tasks = self.store.list(Task)
        names = {s.id: s.spec.name for s in services}
        tasks = sorted((t for t in all_tasks if t.node_id == node_id
                        and t.status.state >= TaskState.ASSIGNED
                        and (t.desired_state <= TaskState.RUNNING or not t.status.state.is_terminal())),
                       key=lambda t: t.id)
        networks = node_networks(node_id, nodes={n.id: n for n in self.store.list(Node)},
                                 networks=self.store.list(Network), services=services, tasks=all_tasks)
        secrets, configs = self._files(tasks)
        versions = ",".join(f"{t.id}:{t.version}" for t in tasks)
        files = sorted(f"{i}:{d}" for i, (d, _) in (secrets | configs).items())
        digest = hashlib.sha256(f"{versions}|{digest_of(networks)}|{','.join(files)}".encode()).hexdigest()[:16]
        return digest, {
            "tasks": [{"task": to_dict(t), "service_name": names.get(t.service_id, "")} for t in tasks],
            "networks": networks,
            "secrets": {i: data for i, (_, data) in secrets.items()},
            "configs": {i: data for i, (_, data) in configs.items()},
        }

    def _files(self, tasks: Sequence[Task]) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
        """id -> (digest, base64 content) of the secrets and of the configs the live tasks mount."""
        out: tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]] = ({}, {})
        for task in tasks:
            if task.desired_state > TaskState.RUNNING:
                continue
            container = task.spec.container
            for ref in container.secrets:
                self._add_file(out[0], ref.id, self.store.get(Secret, ref.id))
            for ref in container.configs:
                self._add_file(out[1], ref.id, self.store.get(Config, ref.id))
        return out

    def _add_file(self, found: dict[str, tuple[str, str]], ref_id: str, obj: Secret | Config | None) -> None:
        if ref_id in found or obj is None or self._unseal is None:
            return  # a secret that is gone: the agent rejects the task that wants it
        try:
            found[ref_id] = (obj.digest, base64.b64encode(self._unseal(obj)).decode())
        except Exception as exc:  # noqa: BLE001 - a secret that won't open must not end the session
            log.warning("cannot unseal %s: %s", ref_id, exc)

    async def wait_for_change(self, node_id: str, known: str, timeout: float) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            digest, payload = self.assignments(node_id)
            left = deadline - time.monotonic()
            if digest != known or left <= 0:
                return digest, payload
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
