"""Layer tars the builder writes itself (COPY, ADD, WORKDIR) and the clean-up of a RUN step's diff.

COPY/ADD never mount anything: sources are read from the context directory or, for ``--from``, through
the source image's layer directories (``trees.LayeredTree``), and the destination is checked against the
target image's layers, so the layer tar holds exactly the new entries (and the parent directories that
did not exist). Docker's rules: a source directory copies its contents; several sources need a
directory destination ending in ``/``; a destination that is an existing directory receives the source
by name; new directories are owned by ``--chown`` (root otherwise); ADD extracts local tar archives.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from node.builder.dockerfile import BuildError
from node.builder.trees import (
    LayeredTree,
    Tree,
    exists_in,
    is_dir_in,
    lstat_in,
    resolve,
    split_path,
    walk,
)

# Mount points a RUN container gets whether the image has them or not: removed from its diff when
# the runtime had to create them (empty) and the image did not have them.
RUNTIME_MOUNT_POINTS = ("/proc", "/sys", "/sys/fs/cgroup", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                        "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/init")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyOptions:
    owner: tuple[int, int] | None = None  # --chown; None keeps the source's owner (context files are root's)
    mode: int | None = None  # --chmod=0755
    mode_expr: str | None = None  # --chmod=u+x,go-w (symbolic, applied to each entry's own mode)
    extract_archives: bool = False  # ADD
    location: str = "Dockerfile"
    keyword: str = "COPY"

    def apply(self, mode: int, *, is_dir: bool) -> int:
        if self.mode is not None:
            return self.mode
        if self.mode_expr is not None:
            return apply_symbolic_mode(mode, self.mode_expr, is_dir=is_dir)
        return mode


_WHO_BITS = {"u": {"r": 0o400, "w": 0o200, "x": 0o100, "s": 0o4000, "t": 0},
             "g": {"r": 0o040, "w": 0o020, "x": 0o010, "s": 0o2000, "t": 0},
             "o": {"r": 0o004, "w": 0o002, "x": 0o001, "s": 0, "t": 0o1000}}  # fmt: skip


def apply_symbolic_mode(mode: int, expr: str, *, is_dir: bool) -> int:
    """chmod's symbolic modes (``u+x``, ``go-w``, ``a=rX``, comma-separated); no ``who`` means all."""
    for clause in expr.split(","):
        op_at = next((i for i, c in enumerate(clause) if c in "+-="), -1)
        if op_at < 0:
            raise ValueError(f"invalid mode: {expr}")
        who = clause[:op_at].replace("a", "ugo") or "ugo"
        op, perms = clause[op_at], clause[op_at + 1 :]
        executable = is_dir or bool(mode & 0o111)
        for person in who:
            bits = _WHO_BITS[person]
            wanted = 0
            for perm in perms:
                wanted |= bits["x"] if perm == "X" and executable else bits.get(perm, 0)
            if op == "+":
                mode |= wanted
            elif op == "-":
                mode &= ~wanted
            else:
                mode = (mode & ~(bits["r"] | bits["w"] | bits["x"] | bits["s"] | bits["t"])) | wanted
    return mode


class LayerWriter:
    """A layer tar being written: entries once each, missing parent directories created first."""

    def __init__(self, out: IO[bytes], dest_tree: LayeredTree, *, dir_owner: tuple[int, int] = (0, 0)) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by close()
        self.dest_tree = dest_tree
        self.dir_owner = dir_owner
        self.written: set[str] = set()
        self.dirs: set[str] = set()
        self.now = int(time.time())

    def close(self) -> None:
        self.tar.close()

    @property
    def count(self) -> int:
        return len(self.written)

    def ensure_dir(self, rel: str, *, mode: int = 0o755) -> None:
        """``rel`` and its parents as directories, adding those the image lacks."""
        parts = split_path(rel)
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix in self.written or exists_in(self.dest_tree, prefix):
                continue
            info = tarfile.TarInfo(prefix)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, self.now
            info.uid, info.gid = self.dir_owner
            self._add(info)

    def add_bytes(self, rel: str, data: bytes, *, mode: int, owner: tuple[int, int]) -> None:
        self.ensure_dir(posixpath.dirname(rel))
        info = tarfile.TarInfo(rel)
        info.size, info.mode, info.mtime = len(data), mode, self.now
        info.uid, info.gid = owner
        self._add(info, io.BytesIO(data))

    def add_host_entry(self, host: Path, rel: str, *, options: CopyOptions) -> None:
        """One file, directory or symlink of the host (not recursive); parents must be there."""
        st = os.lstat(host)
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = int(st.st_mtime)
        info.uid, info.gid = options.owner if options.owner is not None else (st.st_uid, st.st_gid)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
        elif stat.S_ISREG(st.st_mode):
            info.size = st.st_size
        else:
            return  # sockets, fifos, devices are not copied
        if not stat.S_ISLNK(st.st_mode):
            info.mode = options.apply(info.mode, is_dir=stat.S_ISDIR(st.st_mode))
        if info.isreg():
            with open(host, "rb") as fh:
                self._add(info, fh)
        else:
            self._add(info)

    def add_archive(self, archive: Path, dest_dir: str, *, location: str) -> None:
        """ADD of a local tar (plain, gzip, bzip2 or xz): its entries under ``dest_dir``."""
        self.ensure_dir(dest_dir)
        try:
            with tarfile.open(archive, "r:*") as source:
                for member in source:
                    self._add_member(source, member, dest_dir, location=location)
        except tarfile.TarError as exc:
            raise BuildError(f"{location}: ADD {archive.name}: bad archive: {exc}") from None

    def _add_member(self, source: tarfile.TarFile, member: tarfile.TarInfo, dest_dir: str, *, location: str) -> None:
        name = _inside(member.name, location)
        if not name:
            return
        info = member.replace(name=_join(dest_dir, name), deep=False)
        info.uname = info.gname = ""
        if member.islnk():
            info.linkname = _join(dest_dir, _inside(member.linkname, location))
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            return
        self.ensure_dir(posixpath.dirname(info.name))
        if info.isreg():
            self._add(info, source.extractfile(member))
        else:
            self._add(info)

    def _add(self, info: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None:
        name = info.name.strip("/")
        info.name = name
        if name in self.written:
            return
        self.written.add(name)
        if info.isdir():
            self.dirs.add(name)
        self.tar.addfile(info, fileobj)


def _inside(name: str, location: str) -> str:
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if cleaned in ("", "."):
        return ""
    if cleaned.startswith("../"):
        raise BuildError(f"{location}: archive entry {name!r} escapes the destination")
    return cleaned


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def copy_to_layer(writer: LayerWriter, *, src_tree: Tree, sources: Sequence[str], dest: str,
                  options: CopyOptions) -> None:  # fmt: skip
    """Write the entries of ``COPY sources dest`` (paths relative to the source tree; ``dest`` absolute)."""
    dest_tree = writer.dest_tree
    dir_wanted = dest.endswith("/") or len(sources) > 1
    if len(sources) > 1 and not dest.endswith("/") and not is_dir_in(dest_tree, dest):
        raise BuildError(f"{options.location}: When using {options.keyword} with more than one source file, "
                         "the destination must be a directory and end with a /")  # fmt: skip
    target = resolve(dest_tree, dest)
    for source in sources:
        src = resolve(src_tree, source)
        host = src_tree.host_path(src)
        if host is None:
            raise BuildError(f"{options.location}: {options.keyword} source {source!r}: no such file or directory")
        st = os.lstat(host)
        if stat.S_ISDIR(st.st_mode):
            writer.ensure_dir(target)
            for child in walk(src_tree, src):
                child_host = src_tree.host_path(child)
                if child_host is not None:
                    rel = child[len(src) + 1 :] if src else child
                    writer.add_host_entry(child_host, _join(target, rel), options=options)
        elif options.extract_archives and _is_archive(host):
            writer.add_archive(host, target, location=options.location)
        else:
            into_dir = dir_wanted or is_dir_in(dest_tree, target) or _is_dir_written(writer, target)
            name = posixpath.basename(source.rstrip("/")) or posixpath.basename(src)  # a link keeps its own name
            path = _join(target, name) if into_dir else target
            if not path:
                raise BuildError(f"{options.location}: {options.keyword}: cannot copy a file to /")
            writer.ensure_dir(posixpath.dirname(path))
            writer.add_host_entry(host, path, options=options)


def _is_dir_written(writer: LayerWriter, rel: str) -> bool:
    return rel in writer.dirs


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def clean_run_diff(upper: Path, image_tree: LayeredTree, targets: Iterable[str]) -> None:
    """Remove from a RUN container's upper directory the mount points the runtime created for its mounts
    (empty files or directories the image did not have) and the parent directories copied up only to
    hold them, so that secrets, caches and /etc/hosts leave no trace in the layer."""
    for target in targets:
        parts = split_path(target)
        if not parts:
            continue
        rel = "/".join(parts)
        path = upper / rel
        if os.path.lexists(path) and lstat_in(image_tree, rel) is None and _is_empty(path):
            _remove_empty(path)
        for depth in range(len(parts) - 1, 0, -1):
            ancestor_rel = "/".join(parts[:depth])
            ancestor = upper / ancestor_rel
            if ancestor.is_symlink() or not ancestor.is_dir() or os.listdir(ancestor) or _opaque(ancestor):
                break
            before = lstat_in(image_tree, ancestor_rel)
            now = os.lstat(ancestor)
            if before is not None and (before.st_mode, before.st_uid, before.st_gid) != (
                    now.st_mode, now.st_uid, now.st_gid):
                break
            ancestor.rmdir()


def _is_empty(path: Path) -> bool:
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        return not os.listdir(path)
    return False


def _remove_empty(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink()


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def is_empty_dir(path: Path) -> bool:
    return not any(os.scandir(path))
