"""Byte streams the unpacker reads: a window of a file, hashing, and transparent gzip. No tar knowledge."""

from __future__ import annotations

import hashlib
import os
import zlib
from typing import IO, Protocol

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class SectionReader:
    """Bytes [offset, offset+size) of an open file, read with pread (no shared file position)."""

    def __init__(self, fh: IO[bytes], offset: int, size: int) -> None:
        self._fd = fh.fileno()
        self._pos = offset
        self._end = offset + size

    def read(self, n: int = -1, /) -> bytes:
        left = self._end - self._pos
        n = left if n < 0 else min(n, left)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        self._pos += len(data)
        return data


class HashingReader:
    """Passes reads through and keeps the sha256 and byte count of everything read."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self.hasher = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        data = self._src.read(n)
        self.hasher.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class GunzipReader:
    """Decompresses a gzip stream (several members too); raises ValueError on a corrupt or cut stream."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self._z = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._eof = False

    def read(self, n: int = -1, /) -> bytes:
        want = CHUNK if n < 0 else n
        while len(self._pending) < want and not self._eof:
            self._pending += self._inflate()
        data, self._pending = self._pending[:want], self._pending[want:]
        return data

    def _inflate(self) -> bytes:
        if self._z.eof:
            rest = self._z.unused_data
            if not rest:
                rest = self._src.read(CHUNK)
            if not rest:
                self._eof = True
                return b""
            self._z = zlib.decompressobj(wbits=31)
            return self._z.decompress(rest, CHUNK)
        raw = self._z.unconsumed_tail or self._src.read(CHUNK)
        if not raw:
            raise ValueError("compressed stream ends early (truncated gzip)")
        try:
            return self._z.decompress(raw, CHUNK)
        except zlib.error as exc:
            raise ValueError(f"corrupt gzip stream: {exc}") from None


class PeekReader:
    """Lets a caller look at the first bytes (compression magic) without consuming them."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._src.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def read(self, n: int = -1, /) -> bytes:
        if self._head:
            data = self._head if n < 0 else self._head[:n]
            self._head = self._head[len(data):]
            return data
        return self._src.read(n)


class CountingReader:
    """Counts the bytes read through it (for progress), nothing else."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        data = self._src.read(n)
        self.count += len(data)
        return data


class LayerStream:
    """A layer blob opened for reading: `plain` is the tar; a gzip blob's own digest is kept on the side
    (an uncompressed blob's digest is the tar's, which the unpacker computes anyway)."""

    def __init__(self, src: Readable) -> None:
        peek = PeekReader(src)
        self.gzipped = peek.peek(2) == GZIP_MAGIC
        self._hashing = HashingReader(peek) if self.gzipped else None
        self.plain: Readable = GunzipReader(self._hashing) if self._hashing else peek

    def blob_digest(self, tar_digest: str) -> str:
        """The blob's digest once the tar is read: drains what follows the gzip stream."""
        if self._hashing is None:
            return tar_digest
        self._hashing.drain()
        return self._hashing.digest


def decompressed(src: Readable) -> Readable:
    """`src` as plain bytes, gunzipped when it starts with the gzip magic."""
    peek = PeekReader(src)
    if peek.peek(2) == GZIP_MAGIC:
        return GunzipReader(peek)
    return peek
