"""`/events`: a stream of JSON event messages (Docker's shape), with since/until and filters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from node.api.app import engine_of, until_shutdown
from node.errors import InvalidArgument

router = APIRouter()


def _ts(value: str | None, *, name: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid value for {name!r}: {value!r} is not a timestamp") from None


def _match(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    attrs = event["Actor"]["Attributes"]
    for key, values in filters.items():
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and not any(event["Action"].split(":")[0] == v for v in values):
            return False
        if key in ("container", "volume", "image", "network") and event["Type"] == key and \
                not any(v in (event["id"], attrs.get("name")) or event["id"].startswith(v) for v in values):
            return False
        if key == "label" and not all(
                (v.partition("=")[0] in attrs and (not v.partition("=")[2] or attrs[v.partition("=")[0]]
                                                   == v.partition("=")[2])) for v in values):
            return False
    return True


@router.get("/events")
async def events(request: Request, since: str | None = None, until: str | None = None,
                 filters: str | None = None) -> StreamingResponse:
    bus = engine_of(request).events
    since_ts, until_ts = _ts(since, name="since"), _ts(until, name="until")
    try:
        raw = json.loads(filters) if filters else {}
    except json.JSONDecodeError:
        raise InvalidArgument(f"invalid filters: {filters}") from None
    flt = {k: (list(v) if isinstance(v, list) else [x for x, on in v.items() if on]) for k, v in raw.items()}

    async def body() -> AsyncIterator[bytes]:
        yield b""
        stream = bus.subscribe(since_ns=None if since_ts is None else int(since_ts * 1e9),
                               until_ns=None if until_ts is None else int(until_ts * 1e9))
        async with aclosing(stream):
            async for event in stream:
                if _match(event, flt):
                    yield json.dumps(event).encode() + b"\n"

    return StreamingResponse(until_shutdown(engine_of(request), body()), media_type="application/json")
