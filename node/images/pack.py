"""Deterministic layer tars from a directory: for committing a container's or a build step's diff.

Sorted entries, metadata taken from the files (mode, owner, mtime, xattrs), empty user/group names, hard
links kept, overlay whiteouts (0/0 char devices) turned back into `.wh.NAME` and opaque directories into
`DIR/.wh..wh..opq` entries: the same directory always gives the same bytes, hence the same diff id.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from node.images.tarformat import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX

_COPY = 1 << 20


def iter_dir_tar(root: Path) -> Iterator[bytes]:
    """The tar bytes of the tree under `root` (entries relative to it, the root itself excluded)."""
    links: dict[tuple[int, int], str] = {}
    for rel in _walk_sorted(str(root), ""):
        full = os.path.join(root, rel)
        st = os.lstat(full)
        yield from _entry(full, rel, st, links)
    yield bytes(tarfile.BLOCKSIZE * 2)


def _walk_sorted(root: str, rel: str) -> Iterator[str]:
    base = os.path.join(root, rel) if rel else root
    for name in sorted(os.listdir(base)):
        child = f"{rel}/{name}" if rel else name
        yield child
        if stat.S_ISDIR(os.lstat(os.path.join(root, child)).st_mode):
            yield from _walk_sorted(root, child)


def _entry(full: str, rel: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> Iterator[bytes]:
    info = _base_info(rel, st)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        parent, _, name = rel.rpartition("/")
        info.name = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
        info.type, info.mode = tarfile.REGTYPE, 0
        yield info.tobuf(tarfile.PAX_FORMAT)
        return
    xattrs = _xattrs(full)
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in links:
            info.type, info.linkname, info.size = tarfile.LNKTYPE, links[key], 0
            yield info.tobuf(tarfile.PAX_FORMAT)
            return
        links[key] = rel
    if stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
        yield info.tobuf(tarfile.PAX_FORMAT)
        yield from _content(full, st.st_size)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        yield info.tobuf(tarfile.PAX_FORMAT)
        if _is_opaque(full):
            yield _opaque_marker(rel, st).tobuf(tarfile.PAX_FORMAT)
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
        yield info.tobuf(tarfile.PAX_FORMAT)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
        yield info.tobuf(tarfile.PAX_FORMAT)
    # sockets and device nodes are not layer content: skipped


def _base_info(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 1_000_000_000
    return info


def _opaque_marker(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    marker = _base_info(f"{rel}/{OPAQUE_MARKER}", st)
    marker.type, marker.mode = tarfile.REGTYPE, 0
    return marker


def _xattrs(full: str) -> dict[str, str]:
    try:
        names = sorted(os.listxattr(full, follow_symlinks=False))
    except OSError:
        return {}
    out = {}
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        value = os.getxattr(full, name, follow_symlinks=False)
        out[name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(full: str) -> bool:
    try:
        return os.getxattr(full, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _content(full: str, size: int) -> Iterator[bytes]:
    with open(full, "rb") as fh:
        left = size
        while left > 0:
            chunk = fh.read(min(_COPY, left))
            if not chunk:
                raise OSError(f"{full}: changed while packing")
            left -= len(chunk)
            yield chunk
    pad = -size % tarfile.BLOCKSIZE
    if pad:
        yield bytes(pad)
