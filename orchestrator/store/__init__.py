"""The cluster store: versioned objects in a replicated state machine, behind a `Proposer`."""

from orchestrator.store.errors import (
    InvalidOperation,
    NotLeader,
    ObjectExists,
    ObjectNotFound,
    QuorumLost,
    StoreError,
    VersionConflict,
)
from orchestrator.store.proposer import LocalProposer, Proposer
from orchestrator.store.state import Change, ChangeAction, Commit, ObjectKind, Op, OpType, StateMachine
from orchestrator.store.store import AsyncWatch, Reset, Store, Watch, WatchEvent

__all__ = [
    "AsyncWatch",
    "Change",
    "ChangeAction",
    "Commit",
    "InvalidOperation",
    "LocalProposer",
    "NotLeader",
    "ObjectExists",
    "ObjectKind",
    "ObjectNotFound",
    "Op",
    "OpType",
    "Proposer",
    "QuorumLost",
    "Reset",
    "StateMachine",
    "Store",
    "StoreError",
    "VersionConflict",
    "Watch",
    "WatchEvent",
]
