"""`POST /build` (Docker's query parameters; the body is the context tar) and `POST /build/prune`.

Bad input (Dockerfile syntax, unknown target or image, a COPY source missing, a bad tag) is refused
before anything runs: HTTP 400 with a one-line message. Once the build runs, the response streams
Docker's JSON lines: `{"stream": text}` (BuildKit plain progress), `{"aux": {"ID": image id}}` at the
end, or `{"errorDetail": {...}, "error": message}` when a step fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from node.api.app import engine_of
from node.builder.context import extract_context_tar
from node.builder.executor import BuildOptions, BuildService, StepFailed
from node.errors import InvalidArgument, NodeError

log = logging.getLogger(__name__)
router = APIRouter()
_JSON_STREAM = "application/json"


def builder_of(request: Request) -> BuildService:
    service: BuildService = engine_of(request).builder
    return service


@router.post("/build")
async def build(request: Request, t: list[str] = Query(default=[]), dockerfile: str = "Dockerfile",  # noqa: B008
                buildargs: str | None = None, target: str | None = None, nocache: bool = False,
                labels: str | None = None, q: bool = False,
                networkmode: str | None = None) -> StreamingResponse:  # fmt: skip
    service = builder_of(request)
    options = BuildOptions(dockerfile=dockerfile or "Dockerfile", tags=tuple(t), target=target or None,
                           build_args=_json_map(buildargs, "buildargs"), labels=_json_map(labels, "labels"),
                           no_cache=nocache, network=networkmode or "default")  # fmt: skip
    workdir = service.new_workdir()
    try:
        tar_path = workdir / "context.tar"
        with open(tar_path, "wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        await asyncio.to_thread(_extract, tar_path, workdir / "context")
        context_size = tar_path.stat().st_size
        tar_path.unlink()  # it may hold build secrets: only the extracted copy, removed after the build, stays
        prepared = await asyncio.to_thread(service.prepare, workdir, options)
        prepared.context_size = context_size
    except BaseException:
        service.discard_workdir(workdir)
        raise
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(text: str) -> None:
        if not q:
            queue.put_nowait({"stream": text})

    async def produce() -> None:
        try:
            image = await service.run(prepared, emit)
            queue.put_nowait({"aux": {"ID": image.id}})
            if q:
                queue.put_nowait({"stream": image.id + "\n"})
        except Exception as raised:  # noqa: BLE001 - reported to the client, which exits non-zero
            exc = _first(raised)
            if not isinstance(exc, NodeError):
                log.exception("build failed", exc_info=exc)
            message = f"failed to solve: {exc}" if isinstance(exc, StepFailed) else str(exc)
            code = exc.status if isinstance(exc, NodeError) else 500
            queue.put_nowait({"errorDetail": {"message": message, "code": code}, "error": message})
        finally:
            await asyncio.to_thread(service.discard_workdir, workdir)
            queue.put_nowait(None)

    task = asyncio.create_task(produce())
    return StreamingResponse(_lines(queue, task), media_type=_JSON_STREAM)


async def _lines(queue: asyncio.Queue[dict[str, Any] | None], task: asyncio.Task[None]) -> AsyncIterator[bytes]:
    try:
        while (item := await queue.get()) is not None:
            yield json.dumps(item).encode() + b"\r\n"
    finally:
        if not task.done():  # the client went away: stop the build (its containers are removed)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@router.post("/build/prune")
async def prune(request: Request) -> dict[str, Any]:
    return await asyncio.to_thread(builder_of(request).prune)


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _extract(tar_path: Path, dest: Path) -> None:
    try:
        with open(tar_path, "rb") as fh:
            extract_context_tar(fh, dest)
    except NodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - tarfile.ReadError, EOFError, OSError: a bad upload
        raise InvalidArgument(f"build context: not a valid tar: {exc}") from None


def _json_map(text: str | None, name: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"{name}: not a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name}: not a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}
