"""The build cache index: step cache key -> the image that step produced, persisted under the data root.

The images themselves live in the image store (as build-cache images, hidden while untagged), so an
entry whose image is gone (removed with ``rmi``) is simply a miss. The index is one JSON file written
atomically after each new entry; it survives daemon restarts.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from node.fsutil import read_json, write_json_atomic

_VERSION = 1


class CacheIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        record = read_json(path, {}) or {}
        self._entries: dict[str, dict[str, object]] = (
            dict(record.get("entries") or {}) if record.get("version") == _VERSION else {})

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
        return str(entry["image"]) if entry else None

    def put(self, key: str, image_id: str) -> None:
        with self._lock:
            self._entries[key] = {"image": image_id, "created": int(time.time())}
            self._write()

    def forget(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                self._write()

    def clear(self) -> list[str]:
        """Drop every entry; returns the image ids they named."""
        with self._lock:
            ids = sorted({str(e["image"]) for e in self._entries.values()})
            self._entries.clear()
            self._write()
        return ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _write(self) -> None:
        write_json_atomic(self.path, {"version": _VERSION, "entries": self._entries})
