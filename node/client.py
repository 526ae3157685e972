"""The engine's API client over the unix socket, used by every CLI and by compose.

Built on the standard library's http.client rather than httpx: every `pynode` command pays for the
client's import, and httpx costs ~150 ms of a short command's start (it pulls in its own CLI, rich and
pygments); http.client costs a tenth of that. One connection per request: unix sockets are cheap, and
commands like `run` hold two streams (attach and wait) at once.

Responses offer the small httpx-like surface the CLIs use: `status_code`, `headers`, `content`,
`text`, `json()`, `read()`, `iter_raw()`, `iter_bytes()`, `iter_lines()`; `socket` is the raw
connection, for hijacked (upgraded) streams.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from node.config import resolve_host, socket_path_of
from node.errors import Conflict, EngineFailure, InvalidArgument, NodeError, NotFound
from node.network.options import LOCAL_OPT, MTU_OPT, NODE_IP_OPT, VNI_OPT
from node.version import API_VERSION

_STATUS_ERRORS: dict[int, type[NodeError]] = {400: InvalidArgument, 404: NotFound, 409: Conflict}
_CHUNK = 64 * 1024


class DaemonUnavailable(NodeError):
    """No engine answers on the socket."""


def _api_error(status: int, message: str) -> NodeError:
    cls = _STATUS_ERRORS.get(status, EngineFailure)
    err = cls(message)
    err.status = status
    err.from_daemon = True  # type: ignore[attr-defined]
    return err


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("pynode", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Response:
    """One HTTP response; its body is read on demand (streams) or at once (`content`)."""

    def __init__(self, conn: _UnixConnection, raw: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._raw = raw
        self.status_code = raw.status
        self.reason_phrase = raw.reason
        self.headers = raw.headers
        self._content: bytes | None = None

    @property
    def socket(self) -> socket.socket | None:
        return self._conn.sock

    def read(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._raw.read()
            except http.client.IncompleteRead as exc:
                self._content = exc.partial
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.read())

    def iter_raw(self, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The body as it arrives (chunked transfer decoded)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        while True:
            try:
                chunk = self._raw.read1(chunk_size)
            except http.client.IncompleteRead as exc:
                if exc.partial:
                    yield exc.partial
                return
            if not chunk:
                return
            yield chunk

    iter_bytes = iter_raw

    def iter_lines(self) -> Iterator[str]:
        pending = b""
        for chunk in self.iter_raw():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")

    def close(self) -> None:
        self._raw.close()
        self._conn.close()


class EngineClient:
    """`EngineClient(host)`; `host` None means -H / PYNODE_HOST / the default socket."""

    def __init__(self, host: str | None = None, *, timeout: float | None = 300.0) -> None:
        self.host = resolve_host(host)
        self.socket_path = socket_path_of(self.host)
        self.timeout = timeout
        self._prefix = f"/v{API_VERSION}"

    def close(self) -> None:
        """Nothing to release: each request has its own connection."""

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plain requests -------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        response = self._send(method, path, **kwargs)
        try:
            response.read()
        finally:
            response.close()
        _raise_for_status(response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        response = self.request("POST", path, **kwargs)
        return response.json() if response.content else None

    def delete(self, path: str, **kwargs: Any) -> Any:
        response = self.request("DELETE", path, **kwargs)
        return response.json() if response.content else None

    def ping(self) -> bool:
        try:
            return self.request("GET", "/_ping", timeout=2.0).status_code == 200
        except (NodeError, OSError, http.client.HTTPException):
            return False

    # --- streams --------------------------------------------------------------------------------
    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[Response]:
        """A response whose body is read as it comes; no read timeout unless one is given."""
        kwargs.setdefault("timeout", None)
        response = self._send(method, path, **kwargs)
        try:
            if response.status_code >= 400:
                response.read()
                _raise_for_status(response)
            yield response
        finally:
            response.close()

    def stream_json(self, method: str, path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Docker's progress streams: one JSON object per line; an `error` member raises."""
        with self.stream(method, path, **kwargs) as response:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                message = json.loads(line)
                if "error" in message:
                    detail = message.get("errorDetail", {})
                    raise _api_error(int(detail.get("code", 500) or 500), message["error"])
                yield message

    # --- builds ---------------------------------------------------------------------------------
    def build(self, context: str | os.PathLike[str], *, dockerfile: str | os.PathLike[str] | None = None,
              tags: Sequence[str] = (), build_args: Mapping[str, str] | None = None, target: str | None = None,
              no_cache: bool = False, labels: Mapping[str, str] | None = None,
              secrets: Mapping[str, bytes] | None = None, quiet: bool = False,
              network: str | None = None) -> Iterator[dict[str, Any]]:
        """`POST /build` of a context directory (its .dockerignore honoured). Yields the stream's messages:
        `{"stream": text}` (BuildKit plain progress lines) and `{"aux": {"ID": image id}}` last; a failed
        build raises (its report was streamed first). `dockerfile` is a path on this host (default
        CONTEXT/Dockerfile; one outside the context is sent along). `secrets`: id -> content, for
        `RUN --mount=type=secret,id=...` (never stored in the image)."""
        from node.builder.context import SECRETS_DIR, load_ignore, write_context_tar  # only when building

        root = Path(context)
        if not root.is_dir():
            raise InvalidArgument(f"unable to prepare context: path {str(context)!r} not found")
        extra: dict[str, bytes] = {f"{SECRETS_DIR}/{k}": v for k, v in (secrets or {}).items()}
        file_path = Path(dockerfile) if dockerfile is not None else root / "Dockerfile"
        try:
            name = file_path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            try:
                data = file_path.read_bytes()
            except OSError as exc:
                raise InvalidArgument(f"unable to read Dockerfile {str(file_path)!r}: {exc.strerror}") from None
            name = f".dockerfile.{hashlib.sha256(data).hexdigest()[:20]}"
            extra[name] = data
        params: dict[str, Any] = {"t": list(tags), "dockerfile": name, "target": target or None,
                                  "nocache": no_cache, "q": quiet, "networkmode": network}
        if build_args:
            params["buildargs"] = json.dumps(dict(build_args))
        if labels:
            params["labels"] = json.dumps(dict(labels))
        with tempfile.TemporaryFile() as body:
            write_context_tar(root, body, ignore=load_ignore(root, dockerfile=name), dockerfile=name, extra=extra)
            body.seek(0)
            yield from self.stream_json("POST", "/build", params={k: v for k, v in params.items() if v is not None},
                                        content=body, headers={"Content-Type": "application/x-tar"})

    def prune_build_cache(self) -> dict[str, Any]:
        result: dict[str, Any] = self.post("/build/prune")
        return result

    # --- overlay networks: what the cluster agent programs (node/api/overlay.py) ------------------
    def create_overlay_network(
        self, name: str, *, vni: int, subnet: str, gateway: str | None = None, local_ip: str | None = None,
        node_ip: str | None = None, mtu: int | None = None, attachable: bool = False, internal: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Create an overlay exactly as the allocator decided; returns the network's ID."""
        options = {VNI_OPT: str(vni)}
        for key, value in ((LOCAL_OPT, local_ip), (NODE_IP_OPT, node_ip), (MTU_OPT, mtu)):
            if value is not None:
                options[key] = str(value)
        config = {"Subnet": subnet} | ({"Gateway": gateway} if gateway else {})
        body = {"Name": name, "Driver": "overlay", "IPAM": {"Config": [config]}, "Options": options,
                "Attachable": attachable, "Internal": internal, "Labels": dict(labels or {})}
        return str(self.post("/networks/create", json=body)["Id"])

    def add_network_peers(self, network: str, peers: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
        """Program remote endpoints [{"IP", "MAC", "VTEP"}] (a known IP is replaced); returns all peers."""
        return list(self.post(f"/networks/{network}/peers", json={"Peers": [dict(p) for p in peers]})["Peers"])

    def remove_network_peers(self, network: str, addresses: Iterable[str] | None = None) -> list[dict[str, str]]:
        """Forget the peers with these IPs (None: every peer); returns the peers left."""
        body = None if addresses is None else {"Peers": [{"IP": a} for a in addresses]}
        return list(self.delete(f"/networks/{network}/peers", json=body)["Peers"])

    def network_peers(self, network: str) -> list[dict[str, str]]:
        return list(self.get(f"/networks/{network}/peers"))

    def set_network_service(
        self, network: str, name: str, *, backends: Iterable[str], vip: str | None = None,
        endpoint_mode: str = "vip", aliases: Iterable[str] = (), ports: Iterable[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Create or replace a service's record on an overlay: its name resolves to `vip` (or the backends
        with dnsrr), the VIP is balanced over `backends`, replaced in one step, and `ports`
        ([{"Protocol", "TargetPort", "PublishedPort"}], ingress mode) are published on this node."""
        body = {"VIP": vip or "", "EndpointMode": endpoint_mode, "Backends": list(backends), "Aliases": list(aliases),
                "Ports": [dict(p) for p in ports]}
        response = self.request("PUT", f"/networks/{network}/services/{name}", json=body)
        return dict(response.json())

    def remove_network_service(self, network: str, name: str) -> None:
        self.request("DELETE", f"/networks/{network}/services/{name}")

    def network_services(self, network: str) -> list[dict[str, Any]]:
        return list(self.get(f"/networks/{network}/services"))

    # --- the wire -------------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              content: Any = None, headers: Mapping[str, str] | None = None,
              timeout: float | None | object = ...) -> Response:
        url = self._prefix + quote(path, safe="/:@!$&'()*+,;=-._~%")
        if params:
            query = urlencode([(k, _param(v)) for k, v in _param_items(params)])
            if query:
                url += "?" + query
        send_headers = {"Host": "pynode", "User-Agent": "pynode-cli"}
        body: Any = None
        if json is not None:
            body = _json_dumps(json).encode()
            send_headers["Content-Type"] = "application/json"
        elif content is not None:
            body, length = _body_of(content)
            if length is not None:
                send_headers["Content-Length"] = str(length)
        elif method in ("POST", "PUT", "PATCH"):
            send_headers["Content-Length"] = "0"
        send_headers.update(headers or {})
        conn = _UnixConnection(str(self.socket_path), self.timeout if timeout is ... else timeout)  # type: ignore[arg-type]
        try:
            conn.request(method, url, body=body, headers=send_headers,
                         encode_chunked="Content-Length" not in send_headers and body is not None)
            raw = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            conn.close()
            raise self._unavailable() from exc
        except BaseException:
            conn.close()
            raise
        return Response(conn, raw)

    @contextmanager
    def hijack(self, path: str, *, params: Mapping[str, str] | None = None,
               json_body: Any = None) -> Iterator[HijackedConnection]:
        """POST with `Upgrade: tcp` (Docker's attach and exec start): after `101 UPGRADED` the connection carries
        stdin one way and output the other (node.api.hijack); an error answer raises as any request does."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            try:
                sock.connect(str(self.socket_path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise self._unavailable() from exc
            body = _json_dumps(json_body).encode() if json_body is not None else b""
            target = self._prefix + quote(path, safe="/:@!$&'()*+,;=-._~%")
            if params:
                target += "?" + urlencode(list(params.items()))
            head = (f"POST {target} HTTP/1.1\r\nHost: pynode\r\nUser-Agent: pynode-cli\r\nConnection: Upgrade\r\n"
                    f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            sock.sendall(head.encode() + body)
            status, headers, early = _read_head(sock)
            if status != 101:
                text = _read_to_end(sock, headers, early).decode("utf-8", "replace")
                try:
                    message = json.loads(text).get("message") or text
                except (ValueError, AttributeError):
                    message = text
                raise _api_error(status, message.strip() or f"status {status}")
            yield HijackedConnection(sock, early)
        finally:
            sock.close()

    def _unavailable(self) -> DaemonUnavailable:
        return DaemonUnavailable(
            f"Cannot connect to the pynode daemon at {self.host}. Is the pynode daemon running?"
        )


class HijackedConnection:
    """The raw stream of a hijacked request: `recv()` (b"" at its end), `send()`, `close_input()`."""

    def __init__(self, sock: socket.socket, early: bytes) -> None:
        self.sock = sock
        self._early = early

    def recv(self, size: int = _CHUNK) -> bytes:
        if self._early:
            data, self._early = self._early, b""
            return data
        try:
            return self.sock.recv(size)
        except ConnectionResetError:
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_input(self) -> None:
        """Half-close: the daemon sees the end of our stdin and goes on sending output."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(_CHUNK)
        if not chunk:
            raise EngineFailure("the daemon closed the connection before answering")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise EngineFailure(f"bad answer from the daemon: {lines[0]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def _read_to_end(sock: socket.socket, headers: Mapping[str, str], rest: bytes) -> bytes:
    length = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else None
    while length is None or len(rest) < length:
        chunk = sock.recv(_CHUNK)
        if not chunk:
            break
        rest += chunk
    return rest if length is None else rest[:length]


def _json_dumps(value: Any) -> str:
    return json.dumps(value)


def _param_items(params: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            for item in value:
                yield key, item
        else:
            yield key, value


def _param(value: Any) -> str:
    """httpx's rendering of query values: booleans lower-case, None empty."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def _body_of(content: Any) -> tuple[Any, int | None]:
    """(body, length or None for chunked) for bytes, text, a file or an iterable of bytes."""
    if isinstance(content, str):
        content = content.encode()
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content), len(content)
    if hasattr(content, "read"):
        try:
            st = os.fstat(content.fileno())
            if st.st_size and os.path.isfile(f"/proc/self/fd/{content.fileno()}"):
                return content, st.st_size - content.tell()
        except (OSError, ValueError, AttributeError):
            pass
        return _chunks_of(content), None
    if isinstance(content, Iterable):
        return (bytes(c) for c in content), None
    raise TypeError(f"cannot send a body of type {type(content).__name__}")


def _chunks_of(fh: Any) -> Iterator[bytes]:
    while chunk := fh.read(_CHUNK):
        yield chunk


def _raise_for_status(response: Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json().get("message") or response.text
    except (ValueError, AttributeError):
        message = response.text or response.reason_phrase
    raise _api_error(response.status_code, message)
