"""`/images/*` and `/system/df`: Docker Engine API image endpoints over node.images.store.ImageStore.

Pull (`/images/create?fromImage=`, node.images.pull), load, import and bootstrap answer with Docker's JSON-lines
progress stream. Request bodies are spooled to a temp file in the store first (archives need random access);
errors found before the first progress message (a pull's: the registry's answer for the manifest) are HTTP
errors, later ones an `error` line in the stream.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from node.api.app import engine_of
from node.errors import InvalidArgument, NodeError
from node.images import views
from node.images.filters import parse_filters
from node.images.pull import Platform, pull_image, pull_reference, settings_for
from node.images.store import ImageLoaded, ImageStore, LayerProgress, LayerStatus, StatusLine, StoreEvent

router = APIRouter()
_JSON_STREAM = "application/json"


def store_of(request: Request) -> ImageStore:
    store: ImageStore = engine_of(request).images
    return store


@router.get("/images/json")
def list_images(request: Request, filters: str | None = None, all: bool = False) -> list[dict[str, Any]]:  # noqa: A002
    store = store_of(request)
    return [views.summary(image) for image in store.list_images(parse_filters(filters))]


@router.post("/images/load")
async def load_images(request: Request, quiet: bool = False) -> Response:
    store = store_of(request)
    path = await _spool(request, store)

    def events() -> Generator[StoreEvent, None, None]:
        try:
            with open(path, "rb") as fh:
                yield from store.load(fh)
        finally:
            path.unlink(missing_ok=True)
    return await _progress_response(events(), quiet=quiet)


@router.get("/images/get")
def save_images(request: Request, names: list[str] = Query(default=[])) -> StreamingResponse:  # noqa: B008
    return _tar_response(store_of(request).save(names))


@router.post("/images/create")
async def create_image(request: Request, fromSrc: str | None = None, fromImage: str | None = None,  # noqa: N803
                       repo: str | None = None, tag: str | None = None, message: str = "",
                       platform: str = "") -> Response:
    """Pull `fromImage` (tag: a tag or a digest; empty means `latest`, not every tag), or import a rootfs
    tar from the body (`fromSrc=-`)."""
    store = store_of(request)
    if fromImage:
        ref = pull_reference(fromImage, tag)
        config = engine_of(request).config
        settings = settings_for(data_root=config.data_root, insecure=config.insecure_registries)
        return await _progress_response(pull_image(store, ref, settings=settings, platform=Platform.parse(platform)),
                                        quiet=False)
    if fromSrc != "-":
        raise InvalidArgument(f"cannot import from {fromSrc or ''!r}: give fromSrc=- (a rootfs tar in the body) "
                              "or fromImage (a registry image)")
    target = f"{repo}:{tag}" if repo and tag else repo
    path = await _spool(request, store)

    def events() -> Generator[StoreEvent, None, None]:
        try:
            with open(path, "rb") as fh:
                image = store.import_rootfs(fh, tag=target, message=message)
            yield StatusLine(image.id)
        finally:
            path.unlink(missing_ok=True)
    return await _progress_response(events(), quiet=False)


@router.post("/images/bootstrap")
async def bootstrap_image(request: Request, name: str) -> Response:
    """pynode's own: build a base image (busybox, debian:SUITE) without a registry."""
    return await _progress_response(store_of(request).bootstrap(name), quiet=False)


@router.post("/images/prune")
def prune_images(request: Request, filters: str | None = None) -> dict[str, Any]:
    parsed = parse_filters(filters)
    dangling = parsed.get("dangling", ["true"])[-1].lower() in ("true", "1")
    return store_of(request).prune(all_images=not dangling)


@router.get("/system/df")
def system_df(request: Request) -> dict[str, Any]:
    return engine_of(request).disk_usage()


@router.get("/images/{name:path}/json")
def inspect_image(request: Request, name: str) -> dict[str, Any]:
    store = store_of(request)
    image = store.resolve(name)
    return views.inspect(image, graph_driver=store.graph_driver(image), descriptor=store.descriptor(image))


@router.get("/images/{name:path}/history")
def image_history(request: Request, name: str) -> list[dict[str, Any]]:
    store = store_of(request)
    image = store.resolve(name)
    return views.history(image, store.layer_sizes(image))


@router.get("/images/{name:path}/get")
def save_image(request: Request, name: str) -> StreamingResponse:
    return _tar_response(store_of(request).save([name]))


@router.post("/images/{name:path}/tag", status_code=201)
def tag_image(request: Request, name: str, repo: str, tag: str | None = None) -> Response:
    store_of(request).tag(name, f"{repo}:{tag}" if tag else repo)
    return Response(status_code=201)


@router.delete("/images/{name:path}")
def remove_image(request: Request, name: str, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
    return store_of(request).remove(name, force=force)


# --- helpers ---------------------------------------------------------------------------------------
async def _spool(request: Request, store: ImageStore) -> Path:
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=store.tmp)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb", buffering=0) as fh:
            async for chunk in request.stream():
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _tar_response(chunks: Iterator[bytes]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="application/x-tar")


async def _progress_response(events: Generator[StoreEvent, None, None], *, quiet: bool) -> Response:
    """Run the first step before answering, so early failures keep their HTTP status."""
    try:
        first = await run_in_threadpool(next, events, None)
    except BaseException:
        events.close()
        raise
    return StreamingResponse(_json_lines(first, events, quiet=quiet), media_type=_JSON_STREAM)


async def _json_lines(first: StoreEvent | None, events: Iterator[StoreEvent], *, quiet: bool) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            line = _message(first, quiet=quiet)
            if line:
                yield line
        async for event in iterate_in_threadpool(events):
            line = _message(event, quiet=quiet)
            if line:
                yield line
    except NodeError as exc:
        yield _dumps({"errorDetail": {"message": str(exc), "code": exc.status}, "error": str(exc)})


def _message(event: StoreEvent, *, quiet: bool) -> bytes | None:
    if isinstance(event, LayerProgress):
        if quiet:
            return None
        return _dumps({"status": event.action, "id": event.layer,
                       "progressDetail": {"current": event.current, "total": event.total},
                       "progress": _bar(event.current, event.total)})
    if isinstance(event, LayerStatus):
        return None if quiet else _dumps({"status": event.status, "progressDetail": {}, "id": event.layer})
    if isinstance(event, ImageLoaded):
        text = f"Loaded image: {event.tag}\n" if event.tag else f"Loaded image ID: {event.image_id}\n"
        return _dumps({"stream": text, "aux": {"ID": event.image_id}})
    if quiet:
        return None
    return _dumps({"status": event.message, "id": event.id} if event.id else {"status": event.message})


def _bar(current: int, total: int, width: int = 50) -> str:
    filled = width * current // total if total else width
    arrow = ">" if filled < width else "="
    bar = "=" * max(filled - 1, 0) + arrow + " " * (width - filled)
    return f"[{bar[:width]}] {_size(current)}/{_size(total)}"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n:.4g}TB"


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"
