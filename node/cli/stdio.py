"""The terminal side of `run`, `start -a`, `attach` and `exec`: a hijacked connection to our stdio.

Output is read in the main thread (Docker's multiplexed frames split to stdout and stderr, or raw bytes with
a TTY); stdin, when attached, is copied by a daemon thread that half-closes the connection at its end. With a
TTY on a terminal, the terminal is put in raw mode for the session (restored on the way out), its size is sent
at the start and on every SIGWINCH, and Ctrl-P Ctrl-Q detaches, as with Docker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
import termios
import threading
import tty as ttymod
from collections.abc import Callable, Iterator
from typing import IO

from node.client import HijackedConnection

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q


def terminal_size() -> tuple[int, int] | None:
    """(rows, cols) of the terminal on stdout (or stdin), None when neither is one."""
    for fd in (1, 0):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                size = os.get_terminal_size(fd)
                return size.lines, size.columns
    return None


def stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[bool]:
    """Raw mode on stdin while the block runs (yields whether it is on); the old mode comes back after."""
    if not enabled or not stdin_is_tty():
        yield False
        return
    saved = termios.tcgetattr(0)
    ttymod.setraw(0, termios.TCSANOW)
    try:
        yield True
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def follow_resizes(resize: Callable[[int, int], None], *, enabled: bool) -> Iterator[None]:
    """Sends the terminal's size now and whenever it changes (SIGWINCH)."""
    if not enabled or terminal_size() is None:
        yield
        return

    def send(*_: object) -> None:
        size = terminal_size()
        if size:
            with contextlib.suppress(Exception):
                resize(*size)

    previous = signal.signal(signal.SIGWINCH, send)
    try:
        send()
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def proxy_signals(send: Callable[[int], None], *, enabled: bool) -> Iterator[None]:
    """Docker's --sig-proxy: signals we receive go to the container (not with a TTY, where keys do it)."""
    if not enabled:
        yield
        return

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(Exception):
            send(signum)

    previous = {sig: signal.signal(sig, forward) for sig in PROXIED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Session:
    """Copies between a hijacked connection and our stdio until the output ends; `run()` returns True on a
    detach (Ctrl-P Ctrl-Q in raw mode)."""

    def __init__(self, conn: HijackedConnection, *, tty: bool, stdin: bool, detach_keys: bytes | None = None,
                 out: IO[bytes] | None = None, err: IO[bytes] | None = None) -> None:
        self.conn = conn
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.detached = False

    def run(self) -> bool:
        if self.stdin:
            threading.Thread(target=self._feed, name="stdin", daemon=True).start()
        self._copy_output()
        return self.detached

    def _feed(self) -> None:
        held = b""
        try:
            while True:
                data = os.read(0, 32768)
                if not data:
                    break
                if self.detach_keys:
                    data, held, detach = _scan_detach(held + data, self.detach_keys)
                    if detach:
                        self.detached = True
                        with contextlib.suppress(OSError):
                            self.conn.sock.shutdown(2)  # socket.SHUT_RDWR: ends the output loop too
                        return
                if data:
                    self.conn.send(data)
        except OSError:
            return
        if held:
            with contextlib.suppress(OSError):
                self.conn.send(held)
        self.conn.close_input()

    def _copy_output(self) -> None:
        buf = b""
        while chunk := self.conn.recv():
            if self.tty:
                _write(self.out, chunk)
                continue
            buf += chunk
            while len(buf) >= 8:
                kind, size = struct.unpack(">BxxxL", buf[:8])
                if len(buf) < 8 + size:
                    break
                _write(self.err if kind == 2 else self.out, buf[8:8 + size])
                buf = buf[8 + size:]


def _write(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
        stream.flush()
    except BrokenPipeError:
        pass


def _scan_detach(data: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """(bytes to send now, bytes held back as a possible start of the keys, whether the keys were typed)."""
    at = data.find(keys)
    if at >= 0:
        return data[:at], b"", True
    for n in range(len(keys) - 1, 0, -1):  # a prefix of the keys at the end: hold it for the next read
        if data.endswith(keys[:n]):
            return data[:-n], data[-n:], False
    return data, b"", False
