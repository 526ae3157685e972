"""Volumes: create, list, inspect, remove (refused while a container uses it), prune."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from node.errors import Conflict, InvalidArgument, NotFound
from node.events import EventBus
from node.volumes.local import LocalDriver

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
InUse = Callable[[str], list[str]]


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class VolumeService:
    def __init__(self, data_root: Path, *, events: EventBus) -> None:
        self.driver = LocalDriver(data_root / "volumes")
        self.events = events
        self._in_use: InUse = lambda _name: []
        self._lock = threading.Lock()

    def set_in_use_checker(self, checker: InUse) -> None:
        self._in_use = checker

    def info_fields(self) -> dict[str, Any]:
        return {"Plugins": {"Volume": ["local"]}}

    def df_fields(self) -> dict[str, Any]:
        """`/system/df`'s volume part: each volume with Docker's UsageData (bytes used, containers using it)."""
        rows = []
        for name in self.driver.names():
            view = self._view(name, self.driver.meta(name) or {})
            view["UsageData"] = {"Size": self.driver.size(name), "RefCount": len(self._in_use(name))}
            rows.append(view)
        return {"Volumes": rows}

    # --- operations --------------------------------------------------------------------------------
    def create(self, name: str | None = None, *, driver: str = "local", labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None, anonymous: bool = False) -> dict[str, Any]:
        if driver != "local":
            raise NotFound(f"plugin \"{driver}\" not found")
        if options:
            raise InvalidArgument(f"invalid option for the local driver: {sorted(options)[0]}")
        name = name or secrets.token_hex(32)
        if not _NAME.match(name):
            raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume '
                                  'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a '
                                  'host directory, use absolute path')
        with self._lock:
            existing = self.driver.meta(name)
            if existing is not None:
                return self._view(name, existing)
            meta: dict[str, Any] = {"CreatedAt": _now(), "Labels": dict(labels or {}), "Options": None,
                                    "Anonymous": anonymous}
            if anonymous:
                meta["Labels"]["com.docker.volume.anonymous"] = ""
            self.driver.create(name, meta)
        self.events.publish(type_="volume", action="create", actor_id=name, attributes={"driver": "local"})
        return self._view(name, meta)

    def ensure(self, name: str) -> tuple[dict[str, Any], bool]:
        """The volume, created if missing; the flag says whether it was created now."""
        meta = self.driver.meta(name)
        if meta is not None:
            return self._view(name, meta), False
        return self.create(name), True

    def inspect(self, name: str) -> dict[str, Any]:
        meta = self.driver.meta(name)
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        return self._view(name, meta)

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
        out = []
        for name in self.driver.names():
            meta = self.driver.meta(name) or {}
            view = self._view(name, meta)
            if _matches(view, filters or {}, in_use=bool(self._in_use(name))):
                out.append(view)
        return out

    def remove(self, name: str, *, force: bool = False) -> None:
        with self._lock:
            if self.driver.meta(name) is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self._in_use(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self.driver.remove(name)
        self.events.publish(type_="volume", action="destroy", actor_id=name, attributes={"driver": "local"})

    def prune(self, *, all_volumes: bool = False, filters: Mapping[str, Sequence[str]] | None = None
              ) -> dict[str, Any]:
        deleted, reclaimed = [], 0
        for view in self.list(filters):
            name = view["Name"]
            if self._in_use(name) or (not all_volumes and not (self.driver.meta(name) or {}).get("Anonymous")):
                continue
            size = self.driver.size(name)
            try:
                self.remove(name)
            except (Conflict, NotFound):
                continue
            deleted.append(name)
            reclaimed += size
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}

    def path(self, name: str) -> Path:
        return self.driver.path(name)

    def populate(self, name: str, source: Path) -> None:
        self.driver.populate(name, source)

    def _view(self, name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"CreatedAt": meta.get("CreatedAt", ""), "Driver": "local", "Labels": meta.get("Labels") or {},
                "Mountpoint": str(self.driver.path(name)), "Name": name, "Options": meta.get("Options"),
                "Scope": "local"}


def _matches(view: Mapping[str, Any], filters: Mapping[str, Sequence[str]], *, in_use: bool) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in view["Name"] for v in values):
            return False
        if key == "dangling" and any((v in ("true", "1")) == in_use for v in values):
            return False
        if key == "driver" and "local" not in values:
            return False
        if key == "label":
            labels = view["Labels"]
            for v in values:
                k, _, want = v.partition("=")
                if k not in labels or (want and labels[k] != want):
                    return False
    return True
