"""`/containers/...`: Docker Engine API routes for the container lifecycle, logs, wait, stats, top."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from node.api.app import engine_of, until_shutdown
from node.api.hijack import HijackResponse, is_hijackable
from node.containers.logs import LogQuery
from node.containers.service import ContainerService
from node.errors import InvalidArgument, NotModified

router = APIRouter()
_RAW = "application/vnd.docker.raw-stream"
_MUX = "application/vnd.docker.multiplexed-stream"


def svc(request: Request) -> ContainerService:
    containers: ContainerService = engine_of(request).containers  # type: ignore[attr-defined]
    return containers


def _flag(value: str | None) -> bool:
    return value not in (None, "", "0", "false", "False")


# `GET /containers/json` filters the container service applies, and Docker's others: those are refused by
# name rather than ignored (an ignored `health=unhealthy` would list every container as unhealthy).
_LIST_FILTERS = {"ancestor", "before", "exited", "expose", "health", "id", "label", "name", "network", "publish",
                 "since", "status", "volume"}
_DOCKER_LIST_FILTERS = {"isolation", "is-task"}


def _filters(raw: str | None) -> dict[str, list[str]]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidArgument(f"invalid filter: {raw}") from None
    return {k: (list(v) if isinstance(v, list) else [k2 for k2, on in v.items() if on]) for k, v in data.items()}


def _list_filters(raw: str | None) -> dict[str, list[str]]:
    filters = _filters(raw)
    for key in filters:
        if key in _DOCKER_LIST_FILTERS:
            raise InvalidArgument(f"filter {key!r} is not supported by pynode yet")
        if key not in _LIST_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    return filters


@router.post("/containers/create", status_code=201)
async def create(request: Request, name: str | None = None) -> dict[str, Any]:
    body = await request.json()
    return await svc(request).create(body, name)


@router.get("/containers/json")
def list_containers(request: Request, all: str | None = None, filters: str | None = None,  # noqa: A002
                    limit: int = -1) -> list[dict[str, Any]]:
    return svc(request).list(all_=_flag(all), filters=_list_filters(filters), limit=limit)


@router.post("/containers/prune")
async def prune(request: Request) -> dict[str, Any]:
    return await svc(request).prune()


@router.get("/containers/{ref}/json")
def inspect(request: Request, ref: str, size: str | None = None) -> dict[str, Any]:
    return svc(request).inspect(ref, size=_flag(size))


def _no_content(fn: Any) -> Any:
    return fn


@router.post("/containers/{ref}/start", status_code=204)
async def start(request: Request, ref: str) -> Response:
    try:
        await svc(request).start_container(ref)
    except NotModified:
        return Response(status_code=304)
    return Response(status_code=204)


@router.post("/containers/{ref}/stop", status_code=204)
async def stop(request: Request, ref: str, t: int | None = None, signal: str | None = None) -> Response:
    try:
        await svc(request).stop_container(ref, timeout=t, sig=signal)
    except NotModified:
        return Response(status_code=304)
    return Response(status_code=204)


@router.post("/containers/{ref}/restart", status_code=204)
async def restart(request: Request, ref: str, t: int | None = None) -> Response:
    await svc(request).restart_container(ref, timeout=t)
    return Response(status_code=204)


@router.post("/containers/{ref}/kill", status_code=204)
async def kill(request: Request, ref: str, signal: str | None = None) -> Response:
    await svc(request).kill_container(ref, signal)
    return Response(status_code=204)


@router.post("/containers/{ref}/pause", status_code=204)
async def pause(request: Request, ref: str) -> Response:
    await svc(request).pause(ref, True)
    return Response(status_code=204)


@router.post("/containers/{ref}/unpause", status_code=204)
async def unpause(request: Request, ref: str) -> Response:
    await svc(request).pause(ref, False)
    return Response(status_code=204)


@router.delete("/containers/{ref}", status_code=204)
async def remove(request: Request, ref: str, force: str | None = None, v: str | None = None) -> Response:
    await svc(request).remove(ref, force=_flag(force), volumes=_flag(v))
    return Response(status_code=204)


@router.post("/containers/{ref}/wait")
async def wait(request: Request, ref: str, condition: str = "not-running") -> StreamingResponse:
    service = svc(request)
    c = service.get(ref)
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {condition}")
    already = condition == "not-running" and not c.state.is_live and c.state.status.value != "restarting"
    cid, event = service.wait_events(ref, condition)

    async def body() -> AsyncIterator[bytes]:
        yield b""
        if already:
            code = c.state.exit_code
        else:
            await event.wait()
            code = service.exit_code(cid)
        yield json.dumps({"StatusCode": code, "Error": None}).encode()

    return StreamingResponse(until_shutdown(engine_of(request), body()), media_type="application/json")


def _log_query(*, stdout: str | None, stderr: str | None, follow: str | None, tail: str | None,
               since: str | None, until: str | None, timestamps: str | None) -> LogQuery:
    tail_n = None if tail in (None, "", "all") else int(tail)
    return LogQuery(stdout=_flag(stdout), stderr=_flag(stderr), follow=_flag(follow), tail=tail_n,
                    since=float(since or 0), until=float(until or 0), timestamps=_flag(timestamps))


@router.get("/containers/{ref}/logs")
async def logs(request: Request, ref: str, stdout: str | None = None, stderr: str | None = None,
               follow: str | None = None, tail: str | None = None, since: str | None = None,
               until: str | None = None, timestamps: str | None = None) -> StreamingResponse:
    service = svc(request)
    c = service.get(ref)
    q = _log_query(stdout=stdout, stderr=stderr, follow=follow, tail=tail, since=since, until=until,
                   timestamps=timestamps)
    if not (q.stdout or q.stderr):
        raise InvalidArgument("you must choose at least one stream")
    chunks = service.logs(c.id, q)
    if q.follow:
        chunks = until_shutdown(engine_of(request), chunks)
    return StreamingResponse(chunks, media_type=_RAW if c.tty else _MUX)


@router.post("/containers/{ref}/attach", response_model=None)
async def attach(request: Request, ref: str, stream: str | None = None, logs: str | None = None,
                 stdin: str | None = None, stdout: str | None = None,
                 stderr: str | None = None) -> StreamingResponse | HijackResponse:
    """With `Upgrade: tcp` (node.api.hijack): stdin in and output out on the hijacked connection, from now (or
    from the next start) until the container exits. Without it: output only, from the log, until the next
    exit; `logs=1` replays what was logged first."""
    service = svc(request)
    c = service.get(ref)
    if is_hijackable(request.scope):
        session = await service.attach(c.id, stdin=_flag(stdin), stdout=_flag(stdout) or stdout is None,
                                       stderr=_flag(stderr) or stderr is None)
        return HijackResponse(session.serve, media_type=_RAW if c.tty else _MUX)
    q = LogQuery(stdout=_flag(stdout) or stdout is None, stderr=_flag(stderr) or stderr is None,
                 follow=_flag(logs))
    chunks = until_shutdown(engine_of(request), service.logs(c.id, q, until_exit=_flag(stream) or stream is None))
    return StreamingResponse(chunks, media_type=_RAW if c.tty else _MUX)


@router.post("/containers/{ref}/resize")
def resize(request: Request, ref: str, h: int = 0, w: int = 0) -> Response:
    svc(request).resize(ref, height=h, width=w)
    return Response(status_code=200)


@router.get("/containers/{ref}/top")
def top(request: Request, ref: str) -> dict[str, Any]:
    return svc(request).top(ref)


@router.get("/containers/{ref}/stats")
def stats(request: Request, ref: str, stream: str | None = None) -> JSONResponse:
    return JSONResponse(svc(request).stats(ref))
