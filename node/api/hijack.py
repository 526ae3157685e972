"""Hijacked connections: Docker's `Upgrade: tcp` for attach and exec start, on top of uvicorn's h11 protocol.

Docker answers `POST /containers/{id}/attach` and `POST /exec/{id}/start` sent with `Connection: Upgrade` and
`Upgrade: tcp` with `101 UPGRADED`, then carries raw bytes both ways on that connection: the client's stdin one
way, stdout/stderr the other (raw with a TTY, else 8-byte multiplexed frames); the client half-closes its side
when its stdin ends and keeps reading until the daemon closes.

ASGI has no such upgrade (only websockets), so `HijackingH11Protocol` (uvicorn's `http=` protocol class) hands a
request asking for `Upgrade: tcp` to `RawStreamProtocol`, which still runs it through the FastAPI app — routing,
validation and error mapping as usual — with an ASGI extension, `scope["extensions"]["pynode.hijack"]`:

- an answer with any status but 101 is sent as a plain HTTP response, and the connection closed after it;
- after `http.response.start` with status 101, `http.response.body` bytes go to the client as they are, and
  `receive()` yields the client's bytes as `http.request` messages, `more_body: False` once the client
  half-closed its side, then `http.disconnect` when the connection is gone; the last body message closes it.

Requests without `Upgrade: tcp` never reach this module. `HijackResponse` is the route side of the contract.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

EXTENSION = "pynode.hijack"
_HIGH_WATER = 256 * 1024

Read = Callable[[], Awaitable[bytes]]
Write = Callable[[bytes], Awaitable[None]]


def is_hijackable(scope: Scope) -> bool:
    return EXTENSION in (scope.get("extensions") or {})


class HijackResponse(Response):
    """101 UPGRADED, then `serve(read, write)` owns the connection (see node.containers.attach for the contract)."""

    def __init__(self, serve: Callable[[Read, Write], Awaitable[None]], *, media_type: str) -> None:
        super().__init__(media_type=media_type)
        self.serve = serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 101, "headers": [
            (b"content-type", str(self.media_type).encode()), (b"connection", b"Upgrade"), (b"upgrade", b"tcp")]})
        closed_input = False

        async def read() -> bytes:
            nonlocal closed_input
            message = await receive()
            if message["type"] != "http.request":
                raise ConnectionResetError("the client went away")
            if message.get("more_body", False):
                return bytes(message.get("body", b""))
            if closed_input:  # a well-behaved receive() does not get here: it waits for the disconnect
                await asyncio.sleep(0.05)
            closed_input = True
            return b""

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await self.serve(read, write)
        finally:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class HijackingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with `Upgrade: tcp` requests handed to RawStreamProtocol."""

    def _should_upgrade(self) -> bool:
        if self._get_upgrade() == b"tcp":
            return True
        return super()._should_upgrade()

    def handle_websocket_upgrade(self, event: Any) -> None:
        if self._get_upgrade() != b"tcp":
            super().handle_websocket_upgrade(event)
            return
        self.connections.discard(self)
        self._unset_keepalive_if_required()
        length = 0
        for name, value in self.headers:
            if name == b"content-length" and value.strip().isdigit():
                length = int(value)
        scope: Any = dict(self.scope)
        scope["extensions"] = {**(scope.get("extensions") or {}), EXTENSION: {}}
        data, closed = self.conn.trailing_data
        protocol = RawStreamProtocol(app=self.app, scope=scope, body_length=length, server_state=self.server_state)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.begin(bytes(data), eof=closed)


class RawStreamProtocol(asyncio.Protocol):
    """One hijackable request: its body first, then (after a 101) the raw stream both ways."""

    def __init__(self, *, app: Any, scope: Scope, body_length: int, server_state: Any) -> None:
        self.app = app
        self.scope = scope
        self.server_state = server_state
        self.body_length = body_length
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.eof_delivered = False
        self.closed = False
        self.body_delivered = False
        self.discard = 0  # bytes of a request body the app did not read, skipped before the stream
        self.upgraded = False
        self.started = False
        self.finished = False
        self.changed = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    # --- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)

    def begin(self, initial: bytes, *, eof: bool) -> None:
        self.buffer += initial
        self.eof = eof
        task = asyncio.get_running_loop().create_task(self._run())
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self.changed.set()

    def eof_received(self) -> bool:
        self.eof = True
        self.changed.set()
        return True  # keep our side open: the output goes on after the client's input ended

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.changed.set()
        self.writable.set()
        self.server_state.connections.discard(self)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """The server is shutting down."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # --- ASGI -------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except Exception:
            log.exception("hijacked request %s failed", self.scope.get("path"))
            if not self.started:
                await self._send({"type": "http.response.start", "status": 500,
                                  "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await self._send({"type": "http.response.body", "body": b"Internal Server Error"})
        finally:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

    async def _receive(self) -> dict[str, Any]:
        while True:
            self.changed.clear()
            if self.closed:
                return {"type": "http.disconnect"}
            if not self.body_delivered:
                if len(self.buffer) >= self.body_length or self.eof:
                    body = bytes(self.buffer[:self.body_length])
                    del self.buffer[:self.body_length]
                    self.body_delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
            elif self.upgraded and self.discard and self.buffer:
                dropped = min(self.discard, len(self.buffer))
                del self.buffer[:dropped]
                self.discard -= dropped
                continue
            elif self.upgraded and self.buffer:
                data = bytes(self.buffer)
                self.buffer.clear()
                if self.transport is not None:
                    self.transport.resume_reading()
                return {"type": "http.request", "body": data, "more_body": True}
            elif self.upgraded and self.eof and not self.eof_delivered:
                self.eof_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.changed.wait()

    async def _send(self, message: dict[str, Any]) -> None:
        if self.closed or self.finished or self.transport is None:
            return
        if message["type"] == "http.response.start":
            self.started = True
            status = int(message["status"])
            self.upgraded = status == 101
            if self.upgraded and not self.body_delivered:
                self.body_delivered = True
                self.discard = self.body_length
            reason = b"UPGRADED" if self.upgraded else _phrase(status)
            lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
            for name, value in message.get("headers", []):
                if not self.upgraded and bytes(name).lower() == b"connection":
                    continue
                lines.append(bytes(name) + b": " + bytes(value) + b"\r\n")
            if not self.upgraded:
                lines.append(b"connection: close\r\n")
            self.transport.write(b"".join(lines) + b"\r\n")
            self.changed.set()
            return
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                self.transport.write(body)
            if not message.get("more_body", False):
                self.finished = True
                self.transport.close()
                return
            await self.writable.wait()


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""
