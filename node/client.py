"""The engine's API client: a thin httpx wrapper over the unix socket, used by every CLI and by compose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from node.config import resolve_host, socket_path_of
from node.errors import Conflict, EngineFailure, InvalidArgument, NodeError, NotFound
from node.version import API_VERSION

_STATUS_ERRORS: dict[int, type[NodeError]] = {400: InvalidArgument, 404: NotFound, 409: Conflict}


class DaemonUnavailable(NodeError):
    """No engine answers on the socket."""


def _api_error(status: int, message: str) -> NodeError:
    cls = _STATUS_ERRORS.get(status, EngineFailure)
    err = cls(message)
    err.status = status
    err.from_daemon = True  # type: ignore[attr-defined]
    return err


class EngineClient:
    """`EngineClient(host)`; `host` None means -H / PYNODE_HOST / the default socket."""

    def __init__(self, host: str | None = None, *, timeout: float | None = 300.0) -> None:
        self.host = resolve_host(host)
        self.socket_path = socket_path_of(self.host)
        transport = httpx.HTTPTransport(uds=str(self.socket_path))
        self._http = httpx.Client(
            transport=transport, base_url=f"http://pynode/v{API_VERSION}", timeout=httpx.Timeout(timeout)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plain requests -------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise self._unavailable() from exc
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
            return self._http.get("/_ping", timeout=2.0).status_code == 200
        except (httpx.TransportError, OSError):
            return False

    # --- streams --------------------------------------------------------------------------------
    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_status(response)
                yield response
        except (httpx.ConnectError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise self._unavailable() from exc

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

    def _unavailable(self) -> DaemonUnavailable:
        return DaemonUnavailable(
            f"Cannot connect to the pynode daemon at {self.host}. Is the pynode daemon running?"
        )


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json().get("message") or response.text
    except (json.JSONDecodeError, AttributeError):
        message = response.text or response.reason_phrase
    raise _api_error(response.status_code, message)
