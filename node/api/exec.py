"""`/containers/{id}/exec`, `/exec/{id}/start`, `/exec/{id}/json`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from node.api.app import engine_of
from node.containers.exec import ExecService

router = APIRouter()


def svc(request: Request) -> ExecService:
    execs: ExecService = engine_of(request).execs  # type: ignore[attr-defined]
    return execs


@router.post("/containers/{ref}/exec", status_code=201)
async def create(request: Request, ref: str) -> dict[str, Any]:
    return {"Id": svc(request).create(ref, await request.json())}


@router.post("/exec/{eid}/start", response_model=None)
async def start(request: Request, eid: str, stdin: str | None = None) -> Response | StreamingResponse:
    """Body: Docker's `{"Detach": bool, "Tty": bool}`; with `?stdin=1` the body is the input instead."""
    service = svc(request)
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
    return StreamingResponse(body_iter(), media_type="application/vnd.docker.raw-stream" if tty else
                             "application/vnd.docker.multiplexed-stream")


@router.get("/exec/{eid}/json")
def inspect(request: Request, eid: str) -> dict[str, Any]:
    return svc(request).inspect(eid)
