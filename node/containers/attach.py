"""Attached stdio: a client's input to a container's stdin and the container's output back, as Docker's attach.

A session is served over a hijacked API connection through two callables: `read()` returns the client's next
bytes, b"" once the client closed its side (its stdin ended), and raises ConnectionError when the client is gone;
`write(data)` sends output, already framed (raw with a TTY, else Docker's 8-byte multiplexed frames).

Output comes from conmon's attach socket, not from the log: a session made before its container starts (what
`run` does) is connected while the container is `created`, so nothing its process prints is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from node.containers import logs as lg
from node.runtime import console

log = logging.getLogger(__name__)

Read = Callable[[], Awaitable[bytes]]
Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachOptions:
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    def wants(self, stream: str) -> bool:
        return self.stdout if stream == "stdout" else self.stderr


class ContainerAttach:
    """One client attached to one container; `connect()` when its conmon runs, `abandon()` if it never will."""

    def __init__(self, bundle: Path, options: AttachOptions, *,
                 on_close: Callable[[ContainerAttach], None] | None = None) -> None:
        self.bundle = bundle
        self.options = options
        self._on_close = on_close
        self._sock: socket.socket | None = None
        self._settled = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    async def connect(self) -> None:
        if self._settled.is_set():
            return
        try:
            self._sock = await console.connect_attach(self.bundle)
        except OSError as exc:
            log.warning("attach to %s: %s", self.bundle.name[:12], exc)
        self._settled.set()

    def abandon(self) -> None:
        self._settled.set()

    async def serve(self, read: Read, write: Write) -> None:
        """Until the container's output ends (it exited) or the client goes away."""
        inbound = asyncio.create_task(self._input(read))
        settled = asyncio.create_task(self._settled.wait())
        outbound: asyncio.Task[None] | None = None
        try:
            await asyncio.wait({inbound, settled}, return_when=asyncio.FIRST_COMPLETED)
            if inbound.done() or self._sock is None:
                return
            outbound = asyncio.create_task(self._output(write))
            await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (inbound, settled, outbound):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (inbound, settled, outbound) if t is not None), return_exceptions=True)
            self.close()

    def close(self) -> None:
        self._settled.set()
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _input(self, read: Read) -> None:
        """Copies the client's bytes to the container's stdin; returns when the client is gone."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await read()
                if not self.options.stdin:
                    if not data:
                        await _until_gone(read)
                        return
                    continue
                await self._settled.wait()
                if self._sock is None:
                    return
                if not data:
                    with contextlib.suppress(OSError):
                        self._sock.shutdown(socket.SHUT_WR)  # conmon closes the container's stdin
                    await _until_gone(read)
                    return
                for i in range(0, len(data), console.STDIN_PACKET):
                    await loop.sock_sendall(self._sock, data[i:i + console.STDIN_PACKET])
        except (ConnectionError, OSError):
            return

    async def _output(self, write: Write) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, 65536)
            except (ConnectionError, OSError):
                return
            if not packet:
                return
            stream, payload = console.split_packet(packet)
            if payload and self.options.wants(stream):
                await write(lg.frame(stream, payload, tty=self.options.tty))


async def _until_gone(read: Read) -> None:
    """After the client closed its input, wait (discarding) until it disconnects."""
    while True:
        if not await read():
            await asyncio.sleep(0.05)  # a reader that keeps answering b"" must not spin
