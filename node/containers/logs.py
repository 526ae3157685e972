"""Logs: conmon writes k8s-file lines; a pump turns them into Docker's json-file log with rotation.

`<id>-json.log` (and `.1` ... `.N-1` after rotation) hold `{"log": "...", "stream": "stdout", "time": ...}`
lines, as Docker's json-file driver writes them; the pump remembers how far it read conmon's file
(`<bundle>/k8s.offset`), so a restarted daemon carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from node.containers.model import parse_iso
from node.containers.options import parse_bytes
from node.errors import InvalidArgument


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    stream: str
    line: bytes
    time: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    max_size: int = 0  # 0: never rotate
    max_file: int = 1


def rotation_from_opts(opts: dict[str, str]) -> Rotation:
    unknown = set(opts) - {"max-size", "max-file", "compress", "labels", "env", "tag", "mode", "max-buffer-size"}
    if unknown:
        raise InvalidArgument(f"unknown log opt '{sorted(unknown)[0]}' for json-file log driver")
    size = parse_bytes(opts["max-size"]) if opts.get("max-size") else 0
    try:
        files = int(opts.get("max-file", "1"))
    except ValueError:
        raise InvalidArgument(f"invalid value for max-file: {opts.get('max-file')}") from None
    if files < 1:
        raise InvalidArgument("max-file cannot be less than 1")
    return Rotation(max_size=size, max_file=files)


def parse_k8s_line(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    """`<time> <stream> <F|P> <text>` -> (time, stream, full, text)."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", text


# Docker's copier hands a line to the log driver in pieces of at most 16 KiB: a longer one, or one never ended by
# a newline, is written as partial entries (a `log` without the trailing "\n").
MAX_PARTIAL = 16 * 1024


class LogPump:
    """Copies new k8s-file lines of one container into its json-file log.

    conmon's file may be replaced under it (conmon's `--log-size-max` renames a fresh file over it): the pump
    keeps the file it reads open, finishes it, then goes on with the new one from its start. Lines conmon
    marked partial (`P`) wait for the rest of their line; `flush()` writes what is left once the container
    has exited. The offset kept on disk (`<inode> <offset>`) is that of the first line not yet written, so a
    restarted daemon reads a pending partial line again rather than losing it."""

    def __init__(self, *, source: Path, target: Path, offset_file: Path, rotation: Rotation) -> None:
        self.source = source
        self.target = target
        self.offset_file = offset_file
        self.rotation = rotation
        self.inode, self.offset = _read_offset(offset_file)
        self._saved = (self.inode, self.offset)
        self._fh: BinaryIO | None = None
        self._pending_at: int | None = None  # where the oldest partial line still waiting began, in this file
        self._partial: dict[str, bytes] = {}
        self._partial_time: dict[str, str] = {}
        self.changed = asyncio.Event()

    def pump(self) -> bool:
        """Reads what conmon appended (and the rest of a file it replaced); True if anything was written."""
        out = self._read_current()
        while self._fh is not None and self._is_replaced():
            out += self._read_current()  # conmon wrote its last lines there before replacing it
            self._close()
            self.inode, self.offset, self._pending_at = None, 0, None
            out += self._read_current()
        self._write(out)
        return bool(out)

    def flush(self) -> bool:
        """The container exited: its last line had no newline. Write it as Docker does (no trailing "\n")."""
        out = self._read_current()
        out += b"".join(self._entry(stream, self._partial_time.get(stream, ""), text)
                        for stream, text in self._partial.items() if text)
        self._partial.clear()
        self._partial_time.clear()
        self._pending_at = None
        self._write(out)
        self._close()
        return bool(out)

    def close(self) -> None:
        self._close()

    def _open(self) -> BinaryIO | None:
        if self._fh is not None:
            return self._fh
        try:
            fh = open(self.source, "rb")  # noqa: SIM115 - kept open across pumps, closed by _close
        except FileNotFoundError:
            return None
        st = os.fstat(fh.fileno())
        if (self.inode is not None and st.st_ino != self.inode) or st.st_size < self.offset:
            self.offset, self._pending_at = 0, None  # not the file the offset was taken in
            self._partial.clear()
        self.inode = st.st_ino
        fh.seek(self.offset)
        self._fh = fh
        return fh

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _is_replaced(self) -> bool:
        try:
            return os.stat(self.source).st_ino != self.inode
        except FileNotFoundError:
            return False

    def _read_current(self) -> bytes:
        """Converts every whole k8s line read from the current file since the last call."""
        fh = self._open()
        if fh is None:
            return b""
        if os.fstat(fh.fileno()).st_size < self.offset:  # cut short in place: not conmon's way, but start over
            self.offset, self._pending_at = 0, None
        fh.seek(self.offset)
        data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return b""
        out = []
        position = self.offset
        for raw in data[:end].split(b"\n"):
            out.append(self._convert(raw, position))
            position += len(raw) + 1
        self.offset = position
        return b"".join(out)

    def _convert(self, raw: bytes, position: int) -> bytes:
        parsed = parse_k8s_line(raw)
        if parsed is None:
            return b""
        ts, stream, full, text = parsed
        if not self._partial:
            self._pending_at = position
        self._partial_time.setdefault(stream, ts)
        text = self._partial.pop(stream, b"") + text
        if full:
            text += b"\n"
        elif len(text) < MAX_PARTIAL:
            self._partial[stream] = text
            return b""
        self._partial_time.pop(stream, None)
        if not self._partial:
            self._pending_at = None
        return self._entry(stream, ts, text)

    @staticmethod
    def _entry(stream: str, ts: str, text: bytes) -> bytes:
        return json.dumps({"log": text.decode(errors="replace"), "stream": stream,
                           "time": _rfc3339(ts)}).encode() + b"\n"

    def _write(self, out: bytes) -> None:
        if out and self.rotation.max_size:
            for chunk in out.splitlines(keepends=True):
                self._append(chunk)
        elif out:
            self._append(out)
        committed = (self.inode, self.offset if self._pending_at is None else self._pending_at)
        if committed != self._saved:
            _write_offset(self.offset_file, *committed)
            self._saved = committed
        if out:
            self.changed.set()
            self.changed = asyncio.Event()

    def _append(self, data: bytes) -> None:
        if self.rotation.max_size and self.target.exists() and \
                self.target.stat().st_size + len(data) > self.rotation.max_size:
            rotate(self.target, self.rotation.max_file)
        with open(self.target, "ab") as fh:
            fh.write(data)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


def conmon_log_limit(rotation: Rotation) -> int:
    """The size at which conmon starts its k8s file afresh (`--log-size-max`): as much as the json-file log
    keeps with rotation, so conmon's copy costs no more disk than the log itself; bounded without rotation."""
    if rotation.max_size:
        return max(rotation.max_size * rotation.max_file, 4096)
    return 16 << 20


def rotate(path: Path, max_file: int) -> None:
    if max_file <= 1:
        path.unlink(missing_ok=True)
        return
    for n in range(max_file - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if n == max_file - 1:
            older.unlink(missing_ok=True)
        newer = path if n == 1 else path.with_name(f"{path.name}.{n - 1}")
        if newer.exists():
            newer.replace(older)


def _rfc3339(ts: str) -> str:
    # conmon: 2026-11-28T04:51:46.796468824+00:00 -> Docker: 2026-11-28T04:51:46.796468824Z
    return ts[:-6] + "Z" if ts.endswith("+00:00") else ts


def _read_offset(path: Path) -> tuple[int | None, int]:
    """`<inode> <offset>` (or a bare offset, as older daemons wrote it) -> (inode or None, offset)."""
    try:
        fields = path.read_text().split()
        if len(fields) == 2:
            return int(fields[0]), int(fields[1])
        return None, int(fields[0]) if fields else 0
    except (OSError, ValueError):
        return None, 0


def _write_offset(path: Path, inode: int | None, offset: int) -> None:
    path.write_text(f"{inode} {offset}" if inode is not None else str(offset))


def log_files(target: Path) -> list[Path]:
    """Oldest first: `.N` ... `.1`, then the current file."""
    rotated = sorted((p for p in target.parent.glob(f"{target.name}.*") if p.suffix[1:].isdigit()),
                     key=lambda p: -int(p.suffix[1:]))
    return [*rotated, target]


def read_entries(target: Path) -> Iterator[LogEntry]:
    for path in log_files(target):
        try:
            with open(path, "rb") as fh:
                for line in fh:
                    entry = decode_entry(line)
                    if entry is not None:
                        yield entry
        except FileNotFoundError:
            continue


def decode_entry(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return LogEntry(stream=obj.get("stream", "stdout"), line=obj.get("log", "").encode(), time=obj.get("time", ""))


def frame(stream: str, payload: bytes, *, tty: bool) -> bytes:
    """Docker's multiplexed stream: [1|2, 0, 0, 0, size BE32] + payload; raw bytes with a TTY."""
    if tty:
        return payload
    return struct.pack(">BxxxL", 2 if stream == "stderr" else 1, len(payload)) + payload


@dataclass(frozen=True, slots=True, kw_only=True)
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    tail: int | None = None
    since: float = 0.0
    until: float = 0.0
    timestamps: bool = False


def _epoch(ts: str) -> float:
    try:
        return parse_iso(ts[:26] + "Z" if len(ts) > 27 else ts)
    except ValueError:
        return 0.0


def select(entries: list[LogEntry], q: LogQuery) -> list[LogEntry]:
    picked = [e for e in entries if (e.stream == "stdout" and q.stdout) or (e.stream == "stderr" and q.stderr)]
    if q.since:
        picked = [e for e in picked if _epoch(e.time) >= q.since]
    if q.until:
        picked = [e for e in picked if _epoch(e.time) < q.until]
    if q.tail is not None:
        picked = picked[-q.tail:] if q.tail > 0 else []
    return picked


def render_entry(e: LogEntry, q: LogQuery, *, tty: bool) -> bytes:
    payload = (e.time.encode() + b" " + e.line) if q.timestamps else e.line
    return frame(e.stream, payload, tty=tty)
