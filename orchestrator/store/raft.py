"""A `Proposer` replicated with Raft (pysyncobj): one log entry per transaction, state on disk.

pysyncobj runs its own thread; `_ReplicatedState.apply_ops` runs there and only changes the
`StateMachine`, whose listeners hand events on (to a queue or an event loop). Writes from a
follower are forwarded to the leader by pysyncobj; `propose` blocks until this replica has applied
the entry, so a caller reads its own writes.

pysyncobj (0.3.x) truncates a follower's log from `prevLogIdx + 1` on *every* append-entries
message that overlaps it, even a stale, reordered one whose entries all match, and then logs
"truncating already-applied log entries … state machine may have diverged". A follower whose
applied entries were cut that way can later vote for (or become) a leader lacking committed
entries. `_RaftNode` rewrites such redundant messages into a heartbeat at our last index before
pysyncobj sees them (sound by Raft's Log Matching Property, see `_trim_redundant_append`), so no
committed entry is ever truncated.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, SyncObjException, replicated
from pysyncobj import pickle as sync_pickle
from pysyncobj.journal import createJournal

from orchestrator.store.errors import NotLeader, QuorumLost, StoreError
from orchestrator.store.proposer import raise_rejection
from orchestrator.store.state import Commit, Rejection, StateMachine, WireOp

log = logging.getLogger(__name__)

JOURNAL_FILE = "journal.bin"
SNAPSHOT_FILE = "snapshot.bin"
_REGULAR_COMMAND = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftOptions:
    """Timings in seconds. The defaults commit in about a millisecond on loopback and fail over in < 1 s."""

    heartbeat_period: float = 0.05  # pysyncobj's appendEntriesPeriod; entries themselves go out at once
    tick_period: float = 0.01  # the tick thread's longest sleep when idle
    election_timeout_min: float = 0.4
    election_timeout_max: float = 0.8
    leader_step_down_after: float = 2.0  # a leader hearing from no quorum this long steps down
    connection_timeout: float = 1.0
    connection_retry: float = 0.2
    snapshot_min_entries: int = 20_000
    snapshot_min_interval: float = 300.0
    default_timeout: float = 5.0
    password: str | None = None  # encrypts Raft traffic between members (pysyncobj's own encryption)


class _ReplicatedState(SyncObjConsumer):  # type: ignore[misc]
    """The state machine's face to pysyncobj: the replicated methods and the snapshot hooks."""

    def __init__(self, machine: StateMachine) -> None:
        super().__init__()
        self.machine = machine

    @replicated  # type: ignore[untyped-decorator]
    def apply_ops(self, payload: str) -> Commit | Rejection:
        """`payload`: the transaction's operations as JSON text (cheaper to log and ship than dicts)."""
        return self.machine.apply(json.loads(payload))

    @replicated  # type: ignore[untyped-decorator]
    def restore(self, dump: dict[str, Any]) -> int:
        self.machine.load(dump)
        return self.machine.revision

    def _serialize(self) -> dict[str, Any]:
        return {"machine": self.machine.dump()}

    def _deserialize(self, data: dict[str, Any]) -> None:
        self.machine.load(data["machine"])


class _RaftNode(SyncObj):  # type: ignore[misc]
    """SyncObj that never lets a stale append-entries message truncate entries it already holds."""

    def _SyncObj__onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:  # noqa: N802
        if message.get("type") == "append_entries":
            _trim_redundant_append(self, message)
        SyncObj._SyncObj__onMessageReceived(self, node, message)


def _trim_redundant_append(sync: Any, message: dict[str, Any]) -> None:
    """Rewrite an append-entries message so that pysyncobj only truncates our log where Raft says to.

    Raft truncates a follower's log only at the first entry that *conflicts* (same index, other
    term). pysyncobj truncates after `prevLogIdx` whenever our log is longer, which a stale or
    reordered message makes it do to entries we already applied. Here the leading entries that
    match ours are dropped from the message and `prevLogIdx` moves past them; a message our log
    already covers becomes a heartbeat at the highest index we know the leader's log shares with
    ours: our last entry if it carries the leader's term (Log Matching: the leader made it), else
    our last applied entry (it is committed, so every later leader holds it).
    """
    prev_idx = message.get("prevLogIdx")
    if prev_idx is None or "transmission" in message:
        return
    last_idx = sync._SyncObj__getCurrentLogIndex()
    if prev_idx >= last_idx:
        return  # nothing of ours lies past prevLogIdx: nothing to truncate
    ours_prev = sync._SyncObj__getEntries(prev_idx, 1)
    if not ours_prev or ours_prev[0][2] != message["prevLogTerm"]:
        return  # pysyncobj rejects it and the leader backs off
    entries = message.get("entries") or []
    ours = sync._SyncObj__getEntries(prev_idx + 1, len(entries)) if entries else []
    matched = 0
    for mine, theirs in zip(ours, entries, strict=False):
        if mine[2] != theirs[2]:
            break
        matched += 1
    if matched < len(entries):  # a conflict, or entries past our end: start right there
        if matched:
            _set_prev(message, entries[matched - 1][1], entries[matched - 1][2], entries[matched:])
        return
    covered = entries[-1][1] if entries else prev_idx
    if sync._SyncObj__getCurrentLogTerm() == message["term"]:
        shared = last_idx
    else:
        shared = min(sync._SyncObj__raftLastApplied, last_idx)
    shared = max(shared, covered)
    (entry,) = sync._SyncObj__getEntries(shared, 1)
    _set_prev(message, shared, entry[2], [])


def _set_prev(message: dict[str, Any], idx: int, term: int, entries: list[Any]) -> None:
    message["prevLogIdx"] = idx
    message["prevLogTerm"] = term
    message["entries"] = entries


class RaftProposer:
    """One member of a Raft-replicated store, with its journal and snapshot under `raft_dir`."""

    def __init__(
        self,
        self_addr: str,
        peers: Sequence[str],
        raft_dir: Path | str,
        *,
        options: RaftOptions | None = None,
        machine: StateMachine | None = None,
    ) -> None:
        self._options = options or RaftOptions()
        self._raft_dir = Path(raft_dir)
        self._raft_dir.mkdir(parents=True, exist_ok=True)
        self._machine = machine or StateMachine()
        self._state = _ReplicatedState(self._machine)
        self._node = _RaftNode(
            self_addr,
            [p for p in peers if p != self_addr],
            conf=_make_conf(self._options, self._raft_dir),
            consumers=[self._state],
        )
        self.self_addr = self_addr

    # --- Proposer ------------------------------------------------------------------------

    @property
    def machine(self) -> StateMachine:
        return self._machine

    def propose(self, ops: Sequence[WireOp], *, timeout: float | None = None) -> Commit:
        timeout = self._options.default_timeout if timeout is None else timeout
        payload = json.dumps(list(ops), separators=(",", ":"))
        result = self._call(self._state.apply_ops, payload, timeout=timeout)
        return raise_rejection(result)

    def close(self) -> None:
        """Stop the tick thread and close the journal; the files stay for a restart."""
        self._node.destroy_synchronous()

    # --- cluster state -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return bool(self._node._isLeader())

    def is_leader_ready(self) -> bool:
        """Leader, and this replica has applied everything up to the no-op entry of its own term.

        Until then a restarted leader's replica may lack committed entries (pysyncobj applies the
        journal only as entries commit), so decisions made on it could duplicate work."""
        if not self._node._isLeader():
            return False
        noop = getattr(self._node, "_SyncObj__noopIDx", None)
        return noop is not None and self._node._SyncObj__raftLastApplied >= noop

    @property
    def leader(self) -> str | None:
        leader = self._node._getLeader()
        return None if leader is None else str(leader.id)

    @property
    def members(self) -> list[str]:
        return sorted([self.self_addr, *(str(n.id) for n in self._node.otherNodes)])

    def unreachable_members(self) -> list[str]:
        return sorted(str(n.id) for n in self._node.otherNodes if not self._node.isNodeConnected(n))

    def has_quorum(self) -> bool:
        return bool(self._node.hasQuorum)

    def wait_for_leader(self, timeout: float = 10.0) -> str:
        """Block until this member knows a leader and has applied what it committed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader
            if leader is not None and self._node.isReady():
                return leader
            time.sleep(0.005)
        raise QuorumLost(self._quorum_message(f"no leader elected within {timeout:g}s"))

    def add_member(self, addr: str) -> PendingChange:
        """Start adding a manager; start that member (with the full peer list), then `wait()`.

        The change commits under the new configuration, so with one member today it needs the new
        one running. One membership change at a time.
        """
        return self._start_change(self._node.addNodeToCluster, addr)

    def remove_member(self, addr: str) -> PendingChange:
        return self._start_change(self._node.removeNodeFromCluster, addr)

    def transfer_leadership(self, *, timeout: float = 5.0) -> None:
        self._start_change(lambda _addr, callback: self._node.transferLeadership(callback=callback), "").wait(timeout)

    def status(self) -> dict[str, Any]:
        return dict(self._node.getStatus())

    # --- recovery ------------------------------------------------------------------------

    @classmethod
    def force_new_cluster(
        cls, self_addr: str, raft_dir: Path | str, *, options: RaftOptions | None = None
    ) -> RaftProposer:
        """Start a one-member cluster holding the state in `raft_dir` (a surviving member's, stopped).

        The old journal and snapshot move to `raft_dir/pre-force-<time>`; the new log starts with one
        entry that restores the recovered state, so managers added later replicate it.
        """
        raft_dir = Path(raft_dir)
        recovered = recover_state(raft_dir)
        _move_aside(raft_dir)
        proposer = cls(self_addr, [], raft_dir, options=options)
        try:
            proposer.wait_for_leader()
            proposer._call(proposer._state.restore, recovered.dump(), timeout=proposer._options.default_timeout)
        except BaseException:
            proposer.close()
            raise
        return proposer

    # --- helpers -------------------------------------------------------------------------

    def _call(self, method: Any, arg: Any, *, timeout: float) -> Any:
        try:
            return method(arg, sync=True, timeout=timeout)
        except SyncObjException as exc:
            raise self._translate(exc.errorCode, timeout) from exc

    def _translate(self, code: Any, timeout: float) -> StoreError:
        if code == "Timeout":
            return QuorumLost(self._quorum_message(f"write not committed within {timeout:g}s"))
        if code == FAIL_REASON.QUEUE_FULL:
            return StoreError("too many writes pending; try again")
        if code == FAIL_REASON.REQUEST_DENIED:
            return StoreError("request denied: another membership change is in progress")
        return NotLeader(f"leadership changed while committing ({_reason_name(code)}); outcome unknown, retry")

    def _quorum_message(self, fallback: str) -> str:
        total = len(self._node.otherNodes) + 1
        down = len(self.unreachable_members())
        if down >= (total + 1) // 2 and total > 1:
            return f"quorum lost: {down} of {total} managers unreachable"
        return f"{fallback} ({down} of {total} managers unreachable)"

    def _start_change(self, change: Any, addr: str) -> PendingChange:
        pending = PendingChange(self)
        change(addr, callback=pending._on_result)
        return pending


class PendingChange:
    """A membership change on its way through the log."""

    def __init__(self, proposer: RaftProposer) -> None:
        self._proposer = proposer
        self._done = threading.Event()
        self._error: Any = None

    def _on_result(self, result: Any, error: Any) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout: float = 10.0) -> None:
        if not self._done.wait(timeout):
            message = f"membership change not committed within {timeout:g}s"
            raise QuorumLost(self._proposer._quorum_message(message))
        if self._error != FAIL_REASON.SUCCESS:
            raise self._proposer._translate(self._error, timeout)


def _make_conf(options: RaftOptions, raft_dir: Path) -> SyncObjConf:
    return SyncObjConf(
        dynamicMembershipChange=True,
        journalFile=str(raft_dir / JOURNAL_FILE),
        fullDumpFile=str(raft_dir / SNAPSHOT_FILE),
        appendEntriesUseBatch=False,  # send each entry at once: low commit latency
        appendEntriesPeriod=options.heartbeat_period,
        autoTickPeriod=options.tick_period,
        raftMinTimeout=options.election_timeout_min,
        raftMaxTimeout=options.election_timeout_max,
        leaderFallbackTimeout=options.leader_step_down_after,
        connectionTimeout=options.connection_timeout,
        connectionRetryTime=options.connection_retry,
        logCompactionMinEntries=options.snapshot_min_entries,
        logCompactionMinTime=options.snapshot_min_interval,
        useFork=False,  # never fork a threaded process; snapshots are small
        commandsWaitLeader=True,
        password=options.password,
    )


def _reason_name(code: Any) -> str:
    for name in dir(FAIL_REASON):
        if not name.startswith("_") and getattr(FAIL_REASON, name) == code:
            return name.lower()
    return str(code)


def recover_state(raft_dir: Path | str) -> StateMachine:
    """Rebuild a stopped member's state from its snapshot and every entry of its journal."""
    raft_dir = Path(raft_dir)
    machine = StateMachine()
    state = _ReplicatedState(machine)
    applied_up_to = 0
    snapshot = raft_dir / SNAPSHOT_FILE
    if snapshot.exists():
        with gzip.open(snapshot, "rb") as f:
            data = sync_pickle.load(f)
        machine.load(data[0][1]["machine"])
        applied_up_to = data[1][1]
    journal = createJournal(str(raft_dir / JOURNAL_FILE))
    try:
        for i in range(len(journal)):
            command, idx, _term = journal[i]
            if idx > applied_up_to:
                _replay(state, command)
    finally:
        journal._destroy()
    return machine


def _replay(state: _ReplicatedState, command: bytes) -> None:
    if not command or command[0] != _REGULAR_COMMAND:
        return
    decoded = sync_pickle.loads(command[1:])
    if not isinstance(decoded, tuple) or len(decoded) < 2 or len(decoded[1]) != 1:
        return
    (arg,) = decoded[1]
    if isinstance(arg, str):
        state.machine.apply(json.loads(arg))
    elif isinstance(arg, dict):
        state.machine.load(arg)


def _move_aside(raft_dir: Path) -> None:
    backup = raft_dir / f"pre-force-{int(time.time())}"
    backup.mkdir(exist_ok=True)
    for pattern in (f"{JOURNAL_FILE}*", f"{SNAPSHOT_FILE}*"):
        for path in raft_dir.glob(pattern):
            shutil.move(str(path), str(backup / path.name))
