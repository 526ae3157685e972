"""The `local` volume driver: a directory per volume, filled from image content on first use."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from node.fsutil import read_json, write_json_atomic


class LocalDriver:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o701)

    def path(self, name: str) -> Path:
        return self.root / name / "_data"

    def create(self, name: str, meta: dict[str, object]) -> None:
        data = self.path(name)
        data.mkdir(parents=True, exist_ok=True, mode=0o755)
        write_json_atomic(self.root / name / "volume.json", meta)

    def meta(self, name: str) -> dict[str, object] | None:
        meta = read_json(self.root / name / "volume.json")
        return meta if isinstance(meta, dict) else None

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "volume.json").exists())

    def remove(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    def is_empty(self, name: str) -> bool:
        try:
            return not any(os.scandir(self.path(name)))
        except FileNotFoundError:
            return True

    def populate(self, name: str, source: Path) -> None:
        """Copy `source` (image content at the mount path) into an empty volume, owners and modes kept."""
        if not source.is_dir() or not self.is_empty(name):
            return
        target = self.path(name)
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2)
        _copy_owner(source, target)
        for dirpath, dirnames, filenames in os.walk(source):
            rel = os.path.relpath(dirpath, source)
            for entry in dirnames + filenames:
                _copy_owner(Path(dirpath) / entry, target / rel / entry)

    def size(self, name: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.path(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total


def _copy_owner(src: Path, dst: Path) -> None:
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
