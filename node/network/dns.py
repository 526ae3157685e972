"""The embedded DNS server: one UDP and one TCP socket on 127.0.0.11:53 inside each container's network
namespace (created there by a helper thread, served from the daemon's asyncio loop).

Names the engine knows (container names, aliases, short IDs on a network the asking container shares)
get A answers; AAAA for them gets an empty answer; single-label names we don't know get NXDOMAIN; every
other query is forwarded, raw, to the upstream resolvers from the host's namespace. The wire format is
the minimum of RFC 1035 needed for that, written here (no DNS library is installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from node.network.netns import run_in_namespace

log = logging.getLogger(__name__)

RESOLVER_IP = "127.0.0.11"
TYPE_A, TYPE_AAAA = 1, 28
RCODE_NOERROR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 2, 3
TTL = 600

# (container_id, queried name) -> addresses; [] = ours but no address of that family; None = not ours.
Lookup = Callable[[str, str], "list[IPv4Address] | None"]


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    qtype: int
    qclass: int
    end: int  # offset just past the question section


def parse_question(packet: bytes) -> Question | None:
    """The first question of a query, or None if the packet is not one we can read."""
    if len(packet) < 12 or packet[2] & 0x80 or struct.unpack("!H", packet[4:6])[0] < 1:
        return None
    labels, pos = [], 12
    while pos < len(packet):
        length = packet[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 or pos + 1 + length > len(packet):
            return None
        labels.append(packet[pos + 1:pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    if pos + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return Question(".".join(labels).lower(), qtype, qclass, pos + 4)


def build_response(query: bytes, question: Question, *, rcode: int, addresses: Sequence[IPv4Address] = ()) -> bytes:
    """A response echoing the query's ID and question, with an A record per address."""
    flags = 0x8000 | (struct.unpack("!H", query[2:4])[0] & 0x0100) | 0x0080 | 0x0400 | rcode
    header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], flags, 1, len(addresses), 0, 0)
    answers = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, TTL, 4) + addr.packed for addr in addresses)
    return header + query[12:question.end] + answers


def build_query(name: str, qtype: int = TYPE_A, ident: int = 0x1234) -> bytes:
    """A recursive query (tests and health checks use it)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def parse_answers(response: bytes) -> tuple[int, list[IPv4Address]]:
    """(rcode, A addresses) of a response to a single-question query."""
    rcode = response[3] & 0x0F
    question = parse_question(response[:2] + b"\x01\x00" + response[4:])
    if question is None:
        return rcode, []
    count, pos, out = struct.unpack("!H", response[6:8])[0], question.end, []
    for _ in range(count):
        pos = _skip_name(response, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", response[pos:pos + 10])
        pos += 10
        if rtype == TYPE_A and rdlen == 4:
            out.append(IPv4Address(response[pos:pos + 4]))
        pos += rdlen
    return rcode, out


def _skip_name(packet: bytes, pos: int) -> int:
    while packet[pos]:
        if packet[pos] & 0xC0:
            return pos + 2
        pos += 1 + packet[pos]
    return pos + 1


class Resolver:
    """Answers one query for one container: locally, NXDOMAIN, or by forwarding upstream."""

    def __init__(self, lookup: Lookup, upstreams: Callable[[], Sequence[tuple[str, int]]]) -> None:
        self._lookup = lookup
        self._upstreams = upstreams

    async def answer(self, container_id: str, query: bytes) -> bytes | None:
        question = parse_question(query)
        if question is None:
            return None
        local = self._lookup(container_id, question.name) if question.qclass == 1 else None
        if local is not None:
            if question.qtype == TYPE_A and local:
                return build_response(query, question, rcode=RCODE_NOERROR, addresses=local)
            return build_response(query, question, rcode=RCODE_NOERROR if local or question.qtype != TYPE_A
                                  else RCODE_NXDOMAIN)
        if "." not in question.name.rstrip("."):
            return build_response(query, question, rcode=RCODE_NXDOMAIN)
        forwarded = await self._forward(query)
        return forwarded or build_response(query, question, rcode=RCODE_SERVFAIL)

    async def _forward(self, query: bytes) -> bytes | None:
        for host, port in self._upstreams():
            with contextlib.suppress(OSError, TimeoutError):
                return await asyncio.wait_for(_udp_exchange(host, port, query), timeout=2.0)
        return None


async def _udp_exchange(host: str, port: int, query: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, query)
        return await loop.sock_recv(sock, 4096)


def open_listener_sockets(netns: Path | None, *, host: str = RESOLVER_IP, port: int = 53) -> tuple[socket.socket,
                                                                                                   socket.socket]:
    """A bound UDP socket and a listening TCP socket on host:port inside `netns` (None: here)."""

    def make() -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            for sock in (udp, tcp):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.setblocking(False)
            tcp.listen(64)
        except OSError:
            udp.close()
            tcp.close()
            raise
        return udp, tcp

    return run_in_namespace(netns, make)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, container_id: str, resolver: Resolver) -> None:
        self.container_id = container_id
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.ensure_future(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            response = await self.resolver.answer(self.container_id, data)
        except Exception:  # noqa: BLE001 - one bad query never stops the listener
            log.exception("dns: answering a query failed")
            return
        if response is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(response, addr)


@dataclass(slots=True)
class _Listener:
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server


class DnsServer:
    """Serves the listeners of every sandbox from the daemon's loop; `serve`/`close` are loop-thread calls."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._listeners: dict[str, _Listener] = {}

    @property
    def container_ids(self) -> set[str]:
        return set(self._listeners)

    async def serve(self, container_id: str, udp: socket.socket, tcp: socket.socket) -> None:
        await self.close(container_id)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(container_id, self.resolver),
                                                           sock=udp)
        server = await asyncio.start_server(
            lambda r, w: self._serve_tcp(container_id, r, w), sock=tcp)
        self._listeners[container_id] = _Listener(udp=transport, tcp=server)

    async def close(self, container_id: str) -> None:
        listener = self._listeners.pop(container_id, None)
        if listener is not None:
            listener.udp.close()
            listener.tcp.close()

    async def close_all(self) -> None:
        for container_id in list(self._listeners):
            await self.close(container_id)

    async def _serve_tcp(self, container_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                response = await self.resolver.answer(container_id, await reader.readexactly(size))
                if response is None:
                    break
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
