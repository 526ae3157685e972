"""`/containers/{id}/exec`, `/exec/{id}/start`, `/exec/{id}/json`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from node.api.app import engine_of
from node.api.hijack import HijackResponse, is_hijackable
from node.containers.exec import ExecService
from node.errors import InvalidArgument

router = APIRouter()
_RAW = "application/vnd.docker.raw-stream"
_MUX = "application/vnd.docker.multiplexed-stream"


def svc(request: Request) -> ExecService:
    execs: ExecService = engine_of(request).execs  # type: ignore[attr-defined]
    return execs


@router.post("/containers/{ref}/exec", status_code=201)
async def create(request: Request, ref: str) -> dict[str, Any]:
    return {"Id": svc(request).create(ref, await request.json())}


@router.post("/exec/{eid}/start", response_model=None)
async def start(request: Request, eid: str, stdin: str | None = None) -> Response | StreamingResponse:
    """Body: Docker's `{"Detach": bool, "Tty": bool, "ConsoleSize": [h, w]}`. With `Upgrade: tcp` the connection
    is hijacked (node.api.hijack): stdin in, output out. Without it, output only; `?stdin=1` makes the body
    the input instead."""
    service = svc(request)
    if is_hijackable(request.scope) and not stdin:
        raw = await request.body()
        try:
            options = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raise InvalidArgument("invalid exec start body: not JSON") from None
        if not options.get("Detach"):
            e = service.get(eid)
            service.check_startable(eid)
            size = options.get("ConsoleSize") or None
            console_size = (int(size[0]), int(size[1])) if size and len(size) == 2 and all(size) else None

            async def serve(read: Any, write: Any) -> None:
                await service.serve(eid, read, write, console_size=console_size)

            return HijackResponse(serve, media_type=_RAW if e.tty else _MUX)
    data: bytes | None = None
    detach = False
    if stdin:
        data = await request.body()
    else:
        raw = await request.body()
        body = (await request.json()) if raw else {}
        detach = bool(body.get("Detach"))
    stream = service.start(eid, detach=detach, stdin_data=data)
    if detach:
        async for _ in stream:
            pass
        return Response(status_code=200)
    first = await anext(stream, None)

    async def body_iter() -> Any:
        if first is not None:
            yield first
        async for chunk in stream:
            yield chunk

    tty = service.get(eid).tty
    return StreamingResponse(body_iter(), media_type=_RAW if tty else _MUX)


@router.post("/exec/{eid}/resize", status_code=201)
def resize(request: Request, eid: str, h: int = 0, w: int = 0) -> Response:
    svc(request).resize(eid, height=h, width=w)
    return Response(status_code=201)


@router.get("/exec/{eid}/json")
def inspect(request: Request, eid: str) -> dict[str, Any]:
    return svc(request).inspect(eid)
