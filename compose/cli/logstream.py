"""Container output with compose's prefixes: `web-1  | line`, one colour per service."""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from node.client import EngineClient

# Compose's palette: the six base colours, then their bright variants.
_COLOURS = [36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91]


def demux(chunks: Iterable[bytes], *, tty: bool) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream (8-byte headers: stream, size) as (stream, payload); raw when tty."""
    if tty:
        for chunk in chunks:
            yield 1, chunk
        return
    buf = b""
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 8:
            kind, size = struct.unpack(">BxxxL", buf[:8])
            if len(buf) < 8 + size:
                break
            yield kind, buf[8:8 + size]
            buf = buf[8 + size:]


def short_name(project: str, name: str) -> str:
    """compose v2 prints `web-1` for `myapp-web-1`; a container_name is printed as it is."""
    prefix = f"{project}-"
    return name[len(prefix):] if name.startswith(prefix) else name


class LogPrinter:
    """Writes whole lines with a padded, coloured prefix; safe to call from several threads."""

    def __init__(self, names: Sequence[str], services: Sequence[str], *, colour: bool, prefix: bool = True,
                 out: BinaryIO | None = None) -> None:
        self.width = max((len(n) for n in names), default=0)
        self.colour = colour
        self.prefix = prefix
        self.out = out or sys.stdout.buffer
        self._colours = {s: _COLOURS[i % len(_COLOURS)] for i, s in enumerate(sorted(set(services)))}
        self._lock = threading.Lock()

    def _prefix(self, name: str, service: str) -> bytes:
        if not self.prefix:
            return b""
        text = f"{name.ljust(self.width)}  | "
        if self.colour:
            text = f"\x1b[{self._colours.get(service, 37)}m{text}\x1b[0m"
        return text.encode()

    def line(self, name: str, service: str, payload: bytes) -> None:
        with self._lock:
            self.out.write(self._prefix(name, service) + payload.rstrip(b"\n") + b"\n")
            self.out.flush()

    def notice(self, text: str) -> None:
        with self._lock:
            self.out.write(text.encode() + b"\n")
            self.out.flush()


def stream_logs(client: EngineClient, container_id: str, *, name: str, service: str, printer: LogPrinter,
                tty: bool, follow: bool, tail: str = "all", timestamps: bool = False,
                since: float | None = None) -> None:
    """Copy one container's log to the printer line by line until it ends (follow: the container stops)."""
    params = {"stdout": "1", "stderr": "1", "follow": "1" if follow else "0", "tail": tail,
              "timestamps": "1" if timestamps else "0"}
    if since is not None:
        params["since"] = f"{since:.6f}"
    pending = b""
    with client.stream("GET", f"/containers/{container_id}/logs", params=params) as response:
        for _, payload in demux(response.iter_raw(), tty=tty):
            pending += payload
            *lines, pending = pending.split(b"\n")
            for line in lines:
                printer.line(name, service, line)
    if pending:
        printer.line(name, service, pending)
