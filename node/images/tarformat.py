"""Tar headers as bytes: parsing ustar/GNU/PAX headers and checking entry paths. Pure, no I/O.

The layer unpacker reads tars with this instead of `tarfile` so that it can stream at disk speed, keep
every header byte for a byte-exact re-creation of the layer tar (`tarsplit`), and check paths itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from node.errors import InvalidArgument

BLOCK = 512
REGULAR, AREGULAR, HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO, CONTIGUOUS = (
    b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7")
PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK = b"x", b"g", b"L", b"K"
META_TYPES = {PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK}
FILE_TYPES = {REGULAR, AREGULAR, CONTIGUOUS}

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"


class BadLayer(InvalidArgument):
    """A layer tar that is malformed, truncated, or tries to write outside its root."""


@dataclass(slots=True)
class Header:
    """One tar entry after its PAX/GNU prefixes are applied; `raw` is every header byte read for it."""

    name: str
    typeflag: bytes
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    linkname: str
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def padding_of(size: int) -> int:
    return -size % BLOCK


def is_zero_block(block: bytes | memoryview) -> bool:
    return block == bytes(BLOCK)


def parse_number(field_bytes: bytes) -> int:
    """Octal ASCII, or GNU base-256 when the high bit of the first byte is set."""
    if field_bytes and field_bytes[0] & 0x80:
        value = field_bytes[0] & 0x3F
        for b in field_bytes[1:]:
            value = (value << 8) | b
        return -value if field_bytes[0] & 0x40 else value
    text = field_bytes.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise BadLayer(f"malformed tar header: bad number {bytes(field_bytes)!r}") from None


def _text(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def verify_checksum(block: bytes) -> None:
    stored = parse_number(block[148:156])
    computed = sum(block) - sum(block[148:156]) + 8 * 32
    if stored != computed:
        raise BadLayer("malformed tar: header checksum mismatch (not a tar, or corrupt)")


def parse_header(block: bytes) -> Header:
    """A ustar/GNU header block without its PAX overrides."""
    verify_checksum(block)
    name = _text(block[0:100])
    magic = block[257:265]
    if magic[:6] == b"ustar\0":
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    typeflag = block[156:157]
    header = Header(
        name=name, typeflag=typeflag, size=parse_number(block[124:136]),
        mode=parse_number(block[100:108]) & 0o7777, uid=parse_number(block[108:116]),
        gid=parse_number(block[116:124]), mtime_ns=parse_number(block[136:148]) * 1_000_000_000,
        linkname=_text(block[157:257]) if block[157] else "",
    )
    if typeflag in (b"3", b"4"):
        header.devmajor, header.devminor = parse_number(block[329:337]), parse_number(block[337:345])
    return header


def parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX records `LEN KEY=VALUE\\n`; values stay bytes (xattrs may be binary)."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise BadLayer("malformed tar: bad PAX record")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise BadLayer("malformed tar: bad PAX record length") from None
        record = data[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise BadLayer("malformed tar: bad PAX record")
        key, value = record[:-1].split(b"=", 1)
        records[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return records


def apply_pax(header: Header, pax: dict[str, bytes]) -> None:
    for key, value in pax.items():
        if key == "path":
            header.name = value.decode("utf-8", "surrogateescape")
        elif key == "linkpath":
            header.linkname = value.decode("utf-8", "surrogateescape")
        elif key in ("size", "uid", "gid"):
            setattr(header, key, int(value))
        elif key == "mtime":
            header.mtime_ns = int(Decimal(value.decode()) * 1_000_000_000)
        elif key.startswith("SCHILY.xattr."):
            header.xattrs[key[len("SCHILY.xattr."):]] = value
        elif key.startswith("GNU.sparse."):
            raise BadLayer(f"entry {header.name!r}: sparse files are not supported")


def clean_path(name: str) -> str:
    """The entry's path relative to the layer root, or BadLayer when it would leave the root.

    `./a//b/` -> `a/b`; `.` or `./` -> `` (the root itself); absolute paths and `..` components refuse.
    """
    if name.startswith("/"):
        raise BadLayer(f"entry {name!r}: absolute path escapes the layer")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadLayer(f"entry {name!r}: path escapes the layer ('..')")
    if any("\0" in p for p in parts):
        raise BadLayer(f"entry {name!r}: NUL in path")
    return "/".join(parts)


def through_symlink(path: str, symlinks: set[str] | frozenset[str]) -> str | None:
    """The first proper ancestor of `path` that is a symlink (a write through it could land outside)."""
    if not symlinks:
        return None
    pos = path.find("/")
    while pos >= 0:
        if path[:pos] in symlinks:
            return path[:pos]
        pos = path.find("/", pos + 1)
    return None
