"""Container stdio through conmon and the OCI runtime: attach sockets, console sockets, window sizes.

- A container runs under conmon with `--full-attach`, so conmon listens on `<bundle>/attach`, a SOCK_SEQPACKET
  socket (podman's attach protocol): every packet conmon sends is one stream id byte (2 stdout, 3 stderr) and
  the bytes read from that stream; bytes written to it go to the container's stdin (when it runs with `-i`);
  shutting down our write side closes that stdin unless conmon got `--leave-stdin-open`.
- conmon's control fifo `<bundle>/ctl` takes `1 ROWS COLS\n` to resize the container's terminal.
- An exec with a TTY: the runtime (`exec --tty --console-socket PATH`) connects to a unix socket we listen on
  and sends the pty master as SCM_RIGHTS; the daemon then holds the master and resizes it with TIOCSWINSZ.

Unix socket paths are limited to 108 bytes, so sockets under a long bundle path are reached through
`/proc/self/fd/<dirfd>/NAME`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Iterator
from pathlib import Path

STDOUT_ID, STDERR_ID = 2, 3
# conmon reads the attach socket into a 32 KiB buffer (CONN_SOCK_BUF_SIZE) and a packet longer than that would
# be cut: stdin goes in smaller packets.
STDIN_PACKET = 8192


@contextlib.contextmanager
def _short_path(directory: Path, name: str) -> Iterator[str]:
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


async def connect_attach(bundle: Path) -> socket.socket:
    """A non-blocking connection to conmon's attach socket (FileNotFoundError/ConnectionRefusedError if none)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        with _short_path(bundle, "attach") as path:
            await asyncio.get_running_loop().sock_connect(sock, path)
    except BaseException:
        sock.close()
        raise
    return sock


def split_packet(packet: bytes) -> tuple[str, bytes]:
    """One packet from conmon's attach socket -> (stream, payload); stream is "stdout" or "stderr"."""
    return ("stderr" if packet[:1] == bytes([STDERR_ID]) else "stdout"), packet[1:]


def resize_container(bundle: Path, *, height: int, width: int) -> bool:
    """Ask conmon to resize the container's terminal; False if conmon is not listening."""
    try:
        fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO):
            return False
        raise
    try:
        os.write(fd, f"1 {height} {width}\n".encode())
    finally:
        os.close(fd)
    return True


def resize_pty(fd: int, *, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class ConsoleSocket:
    """A listening socket an OCI runtime sends a pty master to (`--console-socket`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with _short_path(path.parent, path.name) as short:
                self._sock.bind(short)
            self._sock.listen(1)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise

    async def receive_master(self) -> int:
        """Waits for the runtime to connect and returns the pty master it sent (non-blocking, ours to close)."""
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self._sock)
        with conn:
            conn.setblocking(True)
            _, fds, _, _ = await asyncio.to_thread(socket.recv_fds, conn, 4096, 4)
        if not fds:
            raise OSError("the runtime sent no terminal")
        for extra in fds[1:]:
            os.close(extra)
        os.set_blocking(fds[0], False)
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


async def read_fd(fd: int, size: int = 65536) -> bytes:
    """One read from a non-blocking fd (a pty master); b"" at its end (EIO once the other side is gone)."""
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise
        await _ready(fd, write=False)


async def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        await _ready(fd, write=True)


async def _ready(fd: int, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)
