"""The overlay2 storage driver: one directory per layer, overlay mounts for writable layers.

Layout under `<data-root>/overlay2` (Docker's): `<id>/diff` (the layer's files), `<id>/link` (its 26-char
short name), `<id>/lower` (`l/<short>:l/<short>...` of its parents, nearest first), `<id>/work`, and
`l/<short> -> ../<id>/diff`. Read-only layers are named by their chain id's hex; writable layers by the
caller's id. The driver owns its mounts: `mounts()` lists them, `unmount()` removes them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from node.errors import EngineFailure, InvalidArgument, NotFound
from node.images.model import Image, hex_of
from node.runtime import mounts as mnt

_LAYER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def short_name(layer_id: str) -> str:
    """A stable 26-character name for `l/` (derived from the id, so concurrent stagings agree)."""
    return base64.b32encode(hashlib.sha256(layer_id.encode()).digest()).decode()[:26]


class Overlay2Driver:
    name = "overlay2"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.links = root / "l"
        self.links.mkdir(parents=True, exist_ok=True, mode=0o700)
        root.chmod(0o710)

    # --- read-only layers -----------------------------------------------------------------------
    def layer_dir(self, layer_id: str) -> Path:
        _check_id(layer_id)
        return self.root / layer_id

    def diff_dir(self, layer_id: str) -> Path:
        return self.layer_dir(layer_id) / "diff"

    def has_layer(self, layer_id: str) -> bool:
        return (self.layer_dir(layer_id) / "link").exists()

    def new_staging(self) -> Path:
        """An empty `diff` to extract into, in a hidden temp dir on the same filesystem."""
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        (staging / "diff").mkdir(mode=0o755)
        return staging

    def commit_staging(self, staging: Path, layer_id: str, parents: Sequence[str]) -> bool:
        """Move a staged layer into place as `layer_id` on top of `parents` (nearest first).

        False when another writer placed the same layer first: the staging is discarded, theirs kept.
        """
        short = short_name(layer_id)
        (staging / "link").write_text(short)
        if parents:
            (staging / "lower").write_text(self._lower_of(parents))
        (staging / "work").mkdir(exist_ok=True)
        target = self.layer_dir(layer_id)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.exists():
                raise
            self.discard_staging(staging)
            return False
        self._ensure_link(short, layer_id)
        return True

    def discard_staging(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def remove_layer(self, layer_id: str) -> None:
        """Remove a layer's directory and `l/` link; idempotent."""
        target = self.layer_dir(layer_id)
        self.unmount(layer_id)
        _unlink_quietly(self.links / short_name(layer_id))
        if not target.exists():
            return
        doomed = Path(tempfile.mkdtemp(prefix=".del-", dir=self.root))
        os.rename(target, doomed / "layer")
        shutil.rmtree(doomed)

    def clean_stale(self) -> None:
        """Leftovers of an interrupted extraction or removal."""
        for entry in self.root.iterdir():
            if entry.name.startswith((".tmp-", ".del-")):
                shutil.rmtree(entry, ignore_errors=True)

    def layer_ids(self) -> list[str]:
        return [e.name for e in self.root.iterdir() if e.name != "l" and not e.name.startswith(".")]

    # --- writable layers ------------------------------------------------------------------------
    def create_rw_layer(self, layer_id: str, image: Image | None) -> None:
        """`<id>/{diff,work,merged}`, `link`, and `lower` naming the image's layers (top first); no lower
        without an image. `layer_id`: letters, digits, `_.-` (a container id). InvalidArgument if it exists."""
        self.create_layer_on(layer_id, [hex_of(c) for c in reversed(image.chain_ids)] if image else [])

    def create_layer_on(self, layer_id: str, parents: Sequence[str]) -> None:
        """A writable layer over the read-only layers `parents` (overlay2 directory names, top first)."""
        target = self.layer_dir(layer_id)
        if target.exists():
            raise InvalidArgument(f"layer {layer_id} already exists")
        for parent in parents:
            if not self.has_layer(parent):
                raise NotFound(f"layer {parent} is not in the store")
        staging = self.new_staging()
        (staging / "merged").mkdir()
        if not self.commit_staging(staging, layer_id, parents):
            raise InvalidArgument(f"layer {layer_id} already exists")

    def mount(self, layer_id: str) -> Path:
        """Mount the layer's overlay at `<id>/merged` (idempotent); a layer without parents is its diff."""
        layer = self.layer_dir(layer_id)
        if not (layer / "link").exists():
            raise NotFound(f"layer {layer_id} does not exist")
        lower_file = layer / "lower"
        if not lower_file.exists():
            return layer / "diff"
        merged = layer / "merged"
        merged.mkdir(exist_ok=True)
        if self.is_mounted(merged):
            return merged
        lowers = lower_file.read_text().strip().split(":")
        absolute = ":".join(str(self.root / lower) for lower in lowers)
        options = f"lowerdir={absolute},upperdir={layer / 'diff'},workdir={layer / 'work'}"
        cwd = None
        if len(options) >= _PAGE - 1:
            options = f"lowerdir={':'.join(lowers)},upperdir={layer_id}/diff,workdir={layer_id}/work"
            cwd = self.root
        if cwd is None:
            mnt.mount("overlay", merged, options=options)
        else:  # relative lower paths: mount(8) in its own cwd (the daemon's threads share ours)
            self._run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], cwd=cwd)
        return merged

    def unmount(self, layer_id: str) -> None:
        merged = self.layer_dir(layer_id) / "merged"
        if self.is_mounted(merged):
            mnt.umount(merged)

    def remove_rw_layer(self, layer_id: str) -> None:
        """Unmount, then remove the layer's directory and its `l/` link; idempotent."""
        self.remove_layer(layer_id)

    def layer_diff_dirs(self, image: Image) -> list[Path]:
        """The image's layer `diff` directories, bottom layer first (overlay's lowerdir lists them reversed)."""
        return [self.diff_dir(hex_of(chain)) for chain in image.chain_ids]

    def rw_layer_size(self, layer_id: str) -> int:
        """Bytes written into a writable layer (Docker's SizeRw)."""
        return self.dir_size(layer_id)

    def dir_size(self, layer_id: str) -> int:
        """Content bytes under the layer's diff (regular files, hard links once; whiteouts are 0)."""
        return tree_size(self.diff_dir(layer_id))

    def mounts(self) -> list[Path]:
        prefix = str(self.root) + "/"
        return [Path(p) for p in mnt.mount_points() if p.startswith(prefix)]

    def is_mounted(self, path: Path) -> bool:
        return str(path) in mnt.mount_points()

    # --- helpers ----------------------------------------------------------------------------------
    def _lower_of(self, parents: Sequence[str]) -> str:
        return ":".join(f"l/{short_name(p)}" for p in parents)

    def _ensure_link(self, short: str, layer_id: str) -> None:
        link = self.links / short
        try:
            link.symlink_to(f"../{layer_id}/diff")
        except FileExistsError:
            pass

    def _run(self, argv: list[str], *, cwd: Path | None = None) -> None:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EngineFailure(f"{argv[0]} failed: {result.stderr.strip() or result.returncode}")


def tree_size(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def backing_filesystem(path: Path) -> str:
    """Docker's name for the filesystem under `path` ("extfs", "xfs", "tmpfs", ...)."""
    best, fstype = "", "unknown"
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            point = mnt.unescape(parts[4])
            if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fstype = point, parts[parts.index("-") + 1]
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype, fstype)


def _check_id(layer_id: str) -> None:
    if not _LAYER_ID.match(layer_id) or layer_id == "l":
        raise InvalidArgument(f"invalid layer id {layer_id!r}")


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
