"""Streaming layer-tar extraction into an overlay2 `diff` directory.

One pass over the tar: entries are written with plain os calls (large buffered copies, no chown or chmod
when the defaults already fit), `.wh.NAME` becomes an overlay whiteout (a 0/0 char device) and
`.wh..wh..opq` the `trusted.overlay.opaque=y` xattr; the sha256 of the tar bytes (the diff id) is computed
on the way, and every non-content byte is kept in a tar-split record so that `save` re-creates the exact
same tar from the directory. Paths that would leave the root, writes through symlinks and device nodes
are refused with BadLayer before anything is written for that entry.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from node.images.streams import CHUNK, HashingReader, Readable
from node.images.tarformat import (
    BLOCK,
    CHARDEV,
    DIRECTORY,
    FIFO,
    FILE_TYPES,
    GNU_LONGLINK,
    GNU_LONGNAME,
    HARDLINK,
    OPAQUE_MARKER,
    OVERLAY_OPAQUE_XATTR,
    PAX_GLOBAL,
    PAX_LOCAL,
    SYMLINK,
    WHITEOUT_PREFIX,
    BadLayer,
    Header,
    apply_pax,
    clean_path,
    is_zero_block,
    padding_of,
    parse_header,
    parse_pax,
    through_symlink,
)

_UMASK = os.umask(0)
os.umask(_UMASK)
_OWNER_IS_ROOT = os.geteuid() == 0 and os.getegid() == 0
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class UnpackResult:
    diff_id: str       # sha256 of the uncompressed tar
    tar_size: int      # bytes of the uncompressed tar
    size: int          # content bytes of the regular files (hard links counted once)
    tarsplit: bytes    # zlib-compressed records to rebuild the tar byte for byte (see tarsplit.py)


class TarSplitRecorder:
    """Records `R <len> <bytes>` for header/padding bytes and `F <path> <size>` for file contents."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(1)
        self._out: list[bytes] = []
        self._raw = bytearray()

    def raw(self, data: bytes | memoryview) -> None:
        self._raw += data

    def file(self, path: str, size: int) -> None:
        self._flush_raw()
        encoded = path.encode("utf-8", "surrogateescape")
        self._out.append(self._z.compress(b"F" + struct.pack(">I", len(encoded)) + encoded + struct.pack(">Q", size)))

    def _flush_raw(self) -> None:
        if self._raw:
            self._out.append(self._z.compress(b"R" + struct.pack(">I", len(self._raw)) + bytes(self._raw)))
            self._raw.clear()

    def finish(self) -> bytes:
        self._flush_raw()
        self._out.append(self._z.flush())
        return b"".join(self._out)


class _Input:
    """A buffered view of the tar bytes with exact-size reads; EOF mid-entry is a truncated tar."""

    def __init__(self, src: HashingReader) -> None:
        self.src = src
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        avail = len(self._buf) - self._pos
        if avail < n:
            self._fill(n)
        data = self._buf[self._pos:self._pos + n]
        self._pos += n
        return data

    def _fill(self, n: int) -> None:
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        while have < n:
            more = self.src.read(max(CHUNK, n - have))
            if not more:
                raise BadLayer("unexpected end of layer tar (truncated)")
            parts.append(more)
            have += len(more)
        self._buf = b"".join(parts)
        self._pos = 0

    def copy_to(self, fd: int, n: int) -> None:
        avail = len(self._buf) - self._pos
        if avail:
            k = min(avail, n)
            _write_all(fd, memoryview(self._buf)[self._pos:self._pos + k])
            self._pos += k
            n -= k
        while n > 0:
            chunk = self.src.read(max(CHUNK, n) if n > CHUNK else CHUNK)
            if not chunk:
                raise BadLayer("unexpected end of layer tar (truncated)")
            if len(chunk) > n:
                _write_all(fd, memoryview(chunk)[:n])
                self._buf, self._pos = chunk, n
                return
            _write_all(fd, chunk)
            n -= len(chunk)

    def rest(self) -> bytes:
        parts = [self._buf[self._pos:]]
        while more := self.src.read(CHUNK):
            parts.append(more)
        self._buf, self._pos = b"", 0
        return b"".join(parts)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Unpacker:
    """Extracts one layer tar into `root` (an empty directory this unpacker alone writes to)."""

    def __init__(self, src: Readable, root: Path) -> None:
        self.hashing = HashingReader(src)
        self.input = _Input(self.hashing)
        self.root = str(root)
        self.split = TarSplitRecorder()
        self.symlinks: set[str] = set()
        self.dir_times: list[tuple[str, int]] = []
        self.size = 0
        self._global_pax: dict[str, bytes] = {}

    def run(self) -> UnpackResult:
        while (header := self._next_header()) is not None:
            self._extract(header)
        self.split.raw(self.input.rest())
        for path, mtime_ns in reversed(self.dir_times):
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        return UnpackResult(self.hashing.digest, self.hashing.count, self.size, self.split.finish())

    # --- headers ----------------------------------------------------------------------------------
    def _next_header(self) -> Header | None:
        pax: dict[str, bytes] = {}
        long_name = long_link = None
        while True:
            block = self.input.take(BLOCK)
            self.split.raw(block)
            if is_zero_block(block):
                return None
            header = parse_header(block)
            if header.typeflag in (PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                data = self._meta_data(header.size)
                if header.typeflag == PAX_LOCAL:
                    pax.update(parse_pax(data))
                elif header.typeflag == PAX_GLOBAL:
                    self._global_pax.update(parse_pax(data))
                elif header.typeflag == GNU_LONGNAME:
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                else:
                    long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            if long_name is not None:
                header.name = long_name
            if long_link is not None:
                header.linkname = long_link
            apply_pax(header, {**self._global_pax, **pax})
            return header

    def _meta_data(self, size: int) -> bytes:
        if size > 16 << 20:
            raise BadLayer("malformed tar: oversized extended header")
        data = self.input.take(size + padding_of(size))
        self.split.raw(data)
        return data[:size]

    # --- entries ----------------------------------------------------------------------------------
    def _extract(self, h: Header) -> None:
        path = clean_path(h.name)
        via = through_symlink(path, self.symlinks)
        if via is not None:
            raise BadLayer(f"entry {h.name!r}: writes through symlink {via!r}, which may point outside the layer")
        base = path.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX) and h.typeflag in FILE_TYPES:
            self._skip_data(h.size)
            self._whiteout(path, base, h)
            return
        if h.typeflag in FILE_TYPES:
            self._regular(path, h)
            return
        self._skip_data(h.size)
        if h.typeflag == DIRECTORY:
            self._directory(path, h)
        elif h.typeflag == SYMLINK:
            self._symlink(path, h)
        elif h.typeflag == HARDLINK:
            self._hardlink(path, h)
        elif h.typeflag == FIFO:
            self._node(path, h, stat.S_IFIFO | h.mode, 0)
        elif h.typeflag == CHARDEV and h.devmajor == 0 and h.devminor == 0:
            self._node(path, h, stat.S_IFCHR, 0)
        elif h.typeflag in (CHARDEV, b"4"):
            raise BadLayer(f"entry {h.name!r}: device nodes are not allowed in image layers")
        else:
            raise BadLayer(f"entry {h.name!r}: unsupported tar entry type {h.typeflag!r}")

    def _skip_data(self, size: int) -> None:
        total = size + padding_of(size)
        while total > 0:
            k = min(total, CHUNK)
            self.split.raw(self.input.take(k))
            total -= k

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    def _ensure_parent(self, path: str) -> None:
        slash = path.rfind("/")
        if slash > 0:
            os.makedirs(self._full(path[:slash]), exist_ok=True)

    def _clear(self, full: str, path: str, *, keep_dir: bool = False) -> None:
        """Make room for an entry over an earlier one of the same name (tar's last-wins rule)."""
        st = os.lstat(full)
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(full)
            self.symlinks = {s for s in self.symlinks if not s.startswith(path + "/")}
        else:
            os.unlink(full)
        self.symlinks.discard(path)

    def _regular(self, path: str, h: Header) -> None:
        if not path:
            raise BadLayer(f"entry {h.name!r}: a file cannot replace the layer root")
        full = self._full(path)
        try:
            fd = os.open(full, _OPEN_FLAGS, h.mode & 0o777)
        except FileNotFoundError:
            self._ensure_parent(path)
            fd = os.open(full, _OPEN_FLAGS, h.mode & 0o777)
        except FileExistsError:
            self._clear(full, path)
            fd = os.open(full, _OPEN_FLAGS, h.mode & 0o777)
        try:
            if h.size:
                self.input.copy_to(fd, h.size)
            self._apply_fd(fd, h)
        finally:
            os.close(fd)
        self.split.file(path, h.size)
        self.size += h.size
        pad = padding_of(h.size)
        if pad:
            self.split.raw(self.input.take(pad))

    def _apply_fd(self, fd: int, h: Header) -> None:
        if not (_OWNER_IS_ROOT and h.uid == 0 and h.gid == 0):
            os.fchown(fd, h.uid, h.gid)
        if h.mode != (h.mode & 0o777 & ~_UMASK) or not (_OWNER_IS_ROOT and h.uid == 0 and h.gid == 0):
            os.fchmod(fd, h.mode)
        for key, value in h.xattrs.items():
            os.setxattr(fd, key, value)
        os.utime(fd, ns=(h.mtime_ns, h.mtime_ns))

    def _directory(self, path: str, h: Header) -> None:
        full = self._full(path)
        if path:
            try:
                os.mkdir(full, 0o700)
            except FileNotFoundError:
                self._ensure_parent(path)
                os.mkdir(full, 0o700)
            except FileExistsError:
                self._clear(full, path, keep_dir=True)
                if not os.path.isdir(full):
                    os.mkdir(full, 0o700)
        os.lchown(full, h.uid, h.gid)
        os.chmod(full, h.mode)
        self._set_xattrs(full, h)
        self.dir_times.append((full, h.mtime_ns))

    def _symlink(self, path: str, h: Header) -> None:
        if not path:
            raise BadLayer(f"entry {h.name!r}: a symlink cannot replace the layer root")
        full = self._full(path)
        self._create(path, lambda: os.symlink(h.linkname, full))
        self.symlinks.add(path)
        self._finish_node(full, h, chmod=False)

    def _hardlink(self, path: str, h: Header) -> None:
        target = clean_path(h.linkname)
        via = through_symlink(target, self.symlinks)
        if via is not None or not target:
            raise BadLayer(f"entry {h.name!r}: hard link target {h.linkname!r} escapes the layer")
        source = self._full(target)
        if not os.path.lexists(source):
            raise BadLayer(f"entry {h.name!r}: hard link target {h.linkname!r} is not in the layer")
        if os.path.isdir(source) and not os.path.islink(source):
            raise BadLayer(f"entry {h.name!r}: hard link to a directory")
        full = self._full(path)
        if source == full:
            return
        self._create(path, lambda: os.link(source, full, follow_symlinks=False))
        if target in self.symlinks:
            self.symlinks.add(path)

    def _node(self, path: str, h: Header, mode: int, device: int) -> None:
        full = self._full(path)
        self._create(path, lambda: os.mknod(full, mode, device))
        self._finish_node(full, h, chmod=stat.S_ISFIFO(mode))

    def _create(self, path: str, make: object) -> None:
        assert callable(make)
        try:
            make()
        except FileNotFoundError:
            self._ensure_parent(path)
            make()
        except FileExistsError:
            self._clear(self._full(path), path)
            make()

    def _finish_node(self, full: str, h: Header, *, chmod: bool) -> None:
        os.lchown(full, h.uid, h.gid)
        if chmod:
            os.chmod(full, h.mode)
        self._set_xattrs(full, h)
        os.utime(full, ns=(h.mtime_ns, h.mtime_ns), follow_symlinks=False)

    def _set_xattrs(self, full: str, h: Header) -> None:
        for key, value in h.xattrs.items():
            os.setxattr(full, key, value, follow_symlinks=False)

    def _whiteout(self, path: str, base: str, h: Header) -> None:
        parent = path[: len(path) - len(base)].rstrip("/")
        if base == OPAQUE_MARKER:
            full = self._full(parent)
            os.makedirs(full, exist_ok=True)
            os.setxattr(full, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs metadata (.wh..wh.plnk and the like): nothing to do on overlay
        name = base[len(WHITEOUT_PREFIX):]
        target = f"{parent}/{name}" if parent else name
        full = self._full(target)
        self._create(target, lambda: os.mknod(full, stat.S_IFCHR, 0))
        os.lchown(full, h.uid, h.gid)


def unpack_layer(src: Readable, root: Path) -> UnpackResult:
    """Extract the (uncompressed) layer tar `src` into the empty directory `root`. Raises BadLayer."""
    return Unpacker(src, root).run()
