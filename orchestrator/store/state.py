"""The replicated state machine: objects by kind, a revision, and atomic transactions.

Transactions travel through the Raft log as JSON-able lists of operation dicts (`Op.to_wire`), and
`StateMachine.apply` is deterministic, so every replica that applies the same log holds the same
objects, the same versions and the same `digest()`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import threading
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.model import (
    Cluster,
    Config,
    ModelError,
    Network,
    Node,
    Secret,
    Service,
    Stack,
    StoredObject,
    Task,
    from_dict,
    to_dict,
)
from orchestrator.store.errors import (
    InvalidOperation,
    ObjectExists,
    ObjectNotFound,
    StoreError,
    VersionConflict,
)

T = TypeVar("T", bound=StoredObject)
WireOp = dict[str, Any]


class ObjectKind(enum.StrEnum):
    CLUSTER = "cluster"
    NODE = "node"
    SERVICE = "service"
    TASK = "task"
    NETWORK = "network"
    SECRET = "secret"
    CONFIG = "config"
    STACK = "stack"


KIND_TYPES: dict[ObjectKind, type[Any]] = {
    ObjectKind.CLUSTER: Cluster,
    ObjectKind.NODE: Node,
    ObjectKind.SERVICE: Service,
    ObjectKind.TASK: Task,
    ObjectKind.NETWORK: Network,
    ObjectKind.SECRET: Secret,
    ObjectKind.CONFIG: Config,
    ObjectKind.STACK: Stack,
}
TYPE_KINDS: dict[type[Any], ObjectKind] = {cls: kind for kind, cls in KIND_TYPES.items()}


def kind_of(obj_or_cls: Any) -> ObjectKind:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    try:
        return TYPE_KINDS[cls]
    except KeyError:
        raise InvalidOperation(f"{cls.__name__} is not a stored object type") from None


class OpType(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One write. `version` is the version the writer read (ignored on create)."""

    op_type: OpType
    kind: ObjectKind
    id: str
    version: int = 0
    obj: StoredObject | None = None

    @classmethod
    def create(cls, obj: StoredObject) -> Op:
        return cls(op_type=OpType.CREATE, kind=kind_of(obj), id=obj.id, obj=obj)

    @classmethod
    def update(cls, obj: StoredObject) -> Op:
        return cls(op_type=OpType.UPDATE, kind=kind_of(obj), id=obj.id, version=obj.version, obj=obj)

    @classmethod
    def delete(cls, obj_type: type[StoredObject], obj_id: str, *, version: int | None = None) -> Op:
        return cls(op_type=OpType.DELETE, kind=kind_of(obj_type), id=obj_id, version=-1 if version is None else version)

    def to_wire(self) -> WireOp:
        wire: WireOp = {
            "op": self.op_type.value,
            "kind": self.kind.value,
            "id": self.id,
            "version": self.version,
        }
        if self.obj is not None:
            wire["object"] = to_dict(self.obj)
        return wire

    @classmethod
    def from_wire(cls, wire: WireOp, *, stored_version: int | None = None) -> Op:
        """Read an operation; `stored_version` becomes the object's version (saves a copy on apply)."""
        try:
            kind = ObjectKind(wire["kind"])
            obj = None
            if "object" in wire:
                data = wire["object"] if stored_version is None else {**wire["object"], "version": stored_version}
                obj = from_dict(KIND_TYPES[kind], data)
            return cls(op_type=OpType(wire["op"]), kind=kind, id=str(wire["id"]), version=int(wire["version"]), obj=obj)
        except (KeyError, ValueError, TypeError, ModelError) as exc:
            raise InvalidOperation(f"unreadable operation: {exc}") from exc


class ChangeAction(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A committed change, as watchers receive it. `obj` is the new object (the old one on delete)."""

    action: ChangeAction
    kind: ObjectKind
    obj: StoredObject
    old: StoredObject | None
    revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """The outcome of one applied transaction."""

    revision: int
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A transaction that failed validation: nothing of it was applied. Deterministic on every replica."""

    error: str  # the StoreError subclass name
    message: str

    def to_exception(self) -> StoreError:
        classes: dict[str, type[StoreError]] = {
            c.__name__: c for c in (VersionConflict, ObjectNotFound, ObjectExists, InvalidOperation)
        }
        return classes.get(self.error, StoreError)(self.message)


ApplyResult = Commit | Rejection
ChangeListener = Callable[[Sequence[Change]], None]


class StateMachine:
    """Objects by kind and id. `apply` is the only writer; reads take a lock shared with it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[ObjectKind, dict[str, Any]] = {kind: {} for kind in ObjectKind}
        self._names: dict[tuple[ObjectKind, str], str] = {}  # unique names of services, networks, ...
        self._revision = 0
        self._listeners: list[ChangeListener] = []
        self._reset_listeners: list[Callable[[], None]] = []

    @property
    def revision(self) -> int:
        return self._revision

    # --- reads -----------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[StateMachine]:
        """Hold off applies while reading several things consistently."""
        with self._lock:
            yield self

    def get(self, obj_type: type[T], obj_id: str) -> T | None:
        with self._lock:
            return typing.cast(T | None, self._objects[kind_of(obj_type)].get(obj_id))

    def list(self, obj_type: type[T]) -> list[T]:
        with self._lock:
            return list(self._objects[kind_of(obj_type)].values())

    def count(self, kind: ObjectKind) -> int:
        with self._lock:
            return len(self._objects[kind])

    # --- listeners -------------------------------------------------------------------------

    def add_listener(self, listener: ChangeListener) -> None:
        """`listener` runs in the applying thread, under the lock, after each commit, in commit order.

        It must be quick and must not block: hand the changes to a queue or an event loop.
        """
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def remove_reset_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._reset_listeners:
                self._reset_listeners.remove(listener)

    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Called after the whole state was replaced (snapshot installed): watchers must re-list."""
        with self._lock:
            self._reset_listeners.append(listener)

    # --- the writer ------------------------------------------------------------------------

    def apply(self, wire_ops: Sequence[WireOp]) -> ApplyResult:
        """Validate every operation, then apply them all under one new revision, or none."""
        with self._lock:
            try:
                ops = [Op.from_wire(w, stored_version=self._revision + 1) for w in wire_ops]
                self._validate(ops)
            except StoreError as exc:
                return Rejection(error=type(exc).__name__, message=str(exc))
            self._revision += 1
            changes = tuple(self._write(op) for op in ops)
            for listener in self._listeners:  # under the lock: strictly in commit order
                listener(changes)
            return Commit(revision=self._revision, changes=changes)

    def _validate(self, ops: Sequence[Op]) -> None:
        staged: dict[tuple[ObjectKind, str], Any] = {}
        names: dict[tuple[ObjectKind, str], str | None] = {}
        for op in ops:
            key = (op.kind, op.id)
            current = staged[key] if key in staged else self._objects[op.kind].get(op.id)
            _check_op(op, current)
            self._check_name(op, current, names)
            staged[key] = None if op.op_type is OpType.DELETE else op.obj

    def _check_name(self, op: Op, current: Any, names: dict[tuple[ObjectKind, str], str | None]) -> None:
        """Services, networks, secrets and configs have names unique within their kind."""
        old_name = unique_name(current) if current is not None else None
        if old_name is not None:
            names[(op.kind, old_name)] = None
        new_name = unique_name(op.obj) if op.op_type is not OpType.DELETE else None
        if new_name is None:
            return
        key = (op.kind, new_name)
        owner = names[key] if key in names else self._names.get(key)
        if owner is not None and owner != op.id:
            raise ObjectExists(f"{op.kind.value} name {new_name!r} is already used by {owner}")
        names[key] = op.id

    def _write(self, op: Op) -> Change:
        table = self._objects[op.kind]
        old: StoredObject | None = table.get(op.id)
        self._index_name(op.kind, old, None)
        if op.op_type is OpType.DELETE:
            assert old is not None
            del table[op.id]
            return Change(action=ChangeAction.DELETE, kind=op.kind, obj=old, old=old, revision=self._revision)
        assert op.obj is not None
        new = op.obj if op.obj.version == self._revision else dataclasses.replace(op.obj, version=self._revision)
        table[op.id] = new
        self._index_name(op.kind, None, new)
        action = ChangeAction.CREATE if op.op_type is OpType.CREATE else ChangeAction.UPDATE
        return Change(action=action, kind=op.kind, obj=new, old=old, revision=self._revision)

    def _index_name(self, kind: ObjectKind, old: StoredObject | None, new: StoredObject | None) -> None:
        if old is not None and (name := unique_name(old)) is not None:
            self._names.pop((kind, name), None)
        if new is not None and (name := unique_name(new)) is not None:
            self._names[(kind, name)] = new.id

    # --- snapshots -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Everything, JSON-able and canonical (objects sorted by id)."""
        with self._lock:
            return {
                "revision": self._revision,
                "objects": {
                    kind.value: [to_dict(table[k]) for k in sorted(table)] for kind, table in self._objects.items()
                },
            }

    def load(self, dump: dict[str, Any]) -> None:
        """Replace everything with `dump` (as made by `dump()`), then tell the reset listeners."""
        objects: dict[ObjectKind, dict[str, Any]] = {kind: {} for kind in ObjectKind}
        for kind_name, items in dump["objects"].items():
            kind = ObjectKind(kind_name)
            for item in items:
                obj = from_dict(KIND_TYPES[kind], item)
                objects[kind][obj.id] = obj
        names = {
            (kind, name): obj.id
            for kind, table in objects.items()
            for obj in table.values()
            if (name := unique_name(obj)) is not None
        }
        with self._lock:
            self._objects = objects
            self._names = names
            self._revision = int(dump["revision"])
            listeners = list(self._reset_listeners)
        for listener in listeners:
            listener()

    def digest(self) -> str:
        """sha256 over the canonical dump: equal on replicas that applied the same log."""
        text = json.dumps(self.dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_NAMED_TYPES = (Service, Network, Secret, Config, Stack)


def unique_name(obj: Any) -> str | None:
    """The name that must be unique within the object's kind, if it has one."""
    if isinstance(obj, _NAMED_TYPES):
        return obj.spec.name
    return None


def _check_op(op: Op, current: Any) -> None:
    where = f"{op.kind.value} {op.id}"
    if op.op_type is OpType.CREATE:
        if current is not None:
            raise ObjectExists(f"{where} already exists")
        if op.obj is None:
            raise InvalidOperation(f"create of {where} carries no object")
        return
    if current is None:
        raise ObjectNotFound(f"{where} not found")
    if op.op_type is OpType.UPDATE and op.obj is None:
        raise InvalidOperation(f"update of {where} carries no object")
    if op.version >= 0 and op.version != current.version:
        raise VersionConflict(f"{where}: version {op.version} is stale (stored version is {current.version})")
