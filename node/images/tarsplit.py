"""Re-creating a layer tar byte for byte from its tar-split record and its unpacked `diff` directory.

Record format (zlib-compressed): `R <u32 len> <bytes>` copies header/padding bytes as they were read;
`F <u32 len> <path> <u64 size>` copies `size` bytes of the file at `path` under the layer's diff dir.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from node.errors import EngineFailure

_COPY = 1 << 20


def iter_records(tarsplit: bytes) -> Iterator[tuple[str, bytes | str, int]]:
    """("raw", bytes, len) or ("file", path, size), in tar order."""
    data = zlib.decompress(tarsplit)
    pos = 0
    while pos < len(data):
        kind = data[pos:pos + 1]
        (length,) = struct.unpack_from(">I", data, pos + 1)
        body = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if kind == b"R":
            yield "raw", body, length
        elif kind == b"F":
            (size,) = struct.unpack_from(">Q", data, pos)
            pos += 8
            yield "file", body.decode("utf-8", "surrogateescape"), size
        else:
            raise EngineFailure("corrupt tar-split record in the layer store")


def iter_layer_tar(tarsplit: bytes, diff_dir: Path) -> Iterator[bytes]:
    """The layer's original tar bytes; EngineFailure when a file in the layer changed size."""
    for kind, value, size in iter_records(tarsplit):
        if kind == "raw":
            assert isinstance(value, bytes)
            yield value
        else:
            assert isinstance(value, str)
            yield from _file_bytes(diff_dir / value, size)


def _file_bytes(path: Path, size: int) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        left = size
        while left > 0:
            chunk = os.read(fd, min(_COPY, left))
            if not chunk:
                raise EngineFailure(f"layer file {path} is shorter than when it was stored")
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
