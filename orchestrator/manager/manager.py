"""A manager: this node's Raft member and store, the dispatcher, and the leader loops when leading."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.daemon.localstate import RAFT_PORT
from orchestrator.manager.dispatcher import Dispatcher
from orchestrator.manager.leader import LeaderLoops
from orchestrator.model import Cluster, Config, Node, NodeRole, Secret
from orchestrator.security.errors import SecurityError
from orchestrator.security.sealing import Sealer
from orchestrator.store import Store
from orchestrator.store.raft import RaftOptions, RaftProposer

log = logging.getLogger(__name__)
PASS_INTERVAL = 0.5


def raft_addr_of(addr: str) -> str:
    return f"{addr}:{RAFT_PORT}"


class Manager:
    def __init__(self, proposer: RaftProposer, *, secret: str = "") -> None:
        self.proposer = proposer
        self.sealer = Sealer(secret) if secret else None  # seals secrets and configs (the Raft secret's key)
        self.store = Store(proposer, timeout=10.0)
        self.dispatcher = Dispatcher(self.store, unseal=self._unseal)
        self.loops = LeaderLoops(self.store, last_seen=self.dispatcher.last_seen.get,
                                 heartbeat_period=self.heartbeat_period)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, *, raft_addr: str, peers: list[str], raft_dir: Path, secret: str,
             force_new_cluster: bool = False) -> Manager:
        options = RaftOptions(password=secret or None)
        if force_new_cluster:
            return cls(RaftProposer.force_new_cluster(raft_addr, raft_dir, options=options), secret=secret)
        return cls(RaftProposer(raft_addr, peers, raft_dir, options=options), secret=secret)

    def _unseal(self, obj: Secret | Config) -> bytes:
        if self.sealer is None:
            raise SecurityError("this manager has no sealing key")
        return self.sealer.unseal(obj.sealed, context=obj.id)

    def cluster(self) -> Cluster | None:
        found = self.store.list(Cluster)
        return found[0] if found else None

    def heartbeat_period(self) -> float:
        cluster = self.cluster()
        return cluster.spec.heartbeat_period if cluster else 5.0

    # --- running -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.to_thread(self.proposer.close)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        watch = self.store.watch_async(loop)

        async def pump() -> None:
            async for _event in watch:
                changed.set()
                self.dispatcher.notify()

        pumping = loop.create_task(pump())
        leading = False
        try:
            while True:
                if self.proposer.is_leader_ready():
                    if not leading:
                        log.info("this manager is the leader now")
                        self.loops.leader_since = time.time()
                        leading = True
                    changed.clear()
                    try:
                        await asyncio.to_thread(self.loops.run_once)
                    except Exception:  # noqa: BLE001 - a leader loop bug must not end the manager
                        log.exception("leader pass failed")
                else:
                    leading = False
                timeout = PASS_INTERVAL
                if self.loops.wake_at is not None:
                    timeout = max(0.05, min(timeout, self.loops.wake_at - time.time()))
                try:
                    await asyncio.wait_for(changed.wait(), timeout)
                    await asyncio.sleep(0.02)  # let a burst of commits land before the next pass
                except TimeoutError:
                    pass
        finally:
            pumping.cancel()
            watch.close()

    # --- membership ----------------------------------------------------------------------------------
    def add_raft_member(self, addr: str) -> list[str]:
        """Start adding a manager at `addr`; the change commits once that member runs. Returns the peers."""
        raft_addr = raft_addr_of(addr)
        members = self.proposer.members
        if raft_addr in members:
            return members
        change = self.proposer.add_member(raft_addr)
        threading.Thread(target=_wait_change, args=(change, f"adding {raft_addr}"), daemon=True).start()
        return sorted([*members, raft_addr])

    def remove_raft_member(self, addr: str) -> None:
        """Take a manager out of the Raft cluster; a leader removing itself hands leadership on first."""
        raft_addr = raft_addr_of(addr)
        if raft_addr not in self.proposer.members:
            return
        if raft_addr == self.proposer.self_addr and self.proposer.is_leader:
            self.proposer.transfer_leadership(timeout=5.0)
            self.proposer.wait_for_leader(10.0)
        self.proposer.remove_member(raft_addr).wait(10.0)

    def manager_status(self, node: Node) -> dict[str, Any] | None:
        if node.role is not NodeRole.MANAGER:
            return None
        raft_addr = raft_addr_of(node.addr)
        members = self.proposer.members
        if raft_addr not in members:
            return {"Leader": False, "Reachability": "unknown", "Addr": f"{node.addr}:2377"}
        unreachable = set(self.proposer.unreachable_members())
        reachable = raft_addr == self.proposer.self_addr or raft_addr not in unreachable
        return {"Leader": self.proposer.leader == raft_addr,
                "Reachability": "reachable" if reachable else "unreachable", "Addr": f"{node.addr}:2377"}


def _wait_change(change: Any, what: str) -> None:
    try:
        change.wait(30.0)
    except Exception as exc:  # noqa: BLE001 - reported in the log; the joining node will notice too
        log.warning("%s failed: %s", what, exc)
