"""`/volumes`: create, list, inspect, remove, prune (Docker Engine API shapes)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from node.api.app import engine_of
from node.volumes.service import VolumeService

router = APIRouter()


def svc(request: Request) -> VolumeService:
    volumes: VolumeService = engine_of(request).volumes  # type: ignore[attr-defined]
    return volumes


def _filters(raw: str | None) -> dict[str, list[str]]:
    if not raw:
        return {}
    data = json.loads(raw)
    return {k: (list(v) if isinstance(v, list) else [k2 for k2, on in v.items() if on]) for k, v in data.items()}


@router.post("/volumes/create", status_code=201)
async def create(request: Request) -> dict[str, Any]:
    body = await request.json()
    return svc(request).create(body.get("Name") or None, driver=body.get("Driver") or "local",
                               labels=body.get("Labels"), options=body.get("DriverOpts"))


@router.get("/volumes")
def list_volumes(request: Request, filters: str | None = None) -> dict[str, Any]:
    return {"Volumes": svc(request).list(_filters(filters)), "Warnings": []}


@router.post("/volumes/prune")
def prune(request: Request, filters: str | None = None) -> dict[str, Any]:
    f = _filters(filters)
    all_volumes = "true" in f.pop("all", []) or "1" in f.get("all", [])
    return svc(request).prune(all_volumes=all_volumes, filters=f)


@router.get("/volumes/{name}")
def inspect(request: Request, name: str) -> dict[str, Any]:
    return svc(request).inspect(name)


@router.delete("/volumes/{name}", status_code=204)
def remove(request: Request, name: str, force: str | None = None) -> Response:
    svc(request).remove(name, force=force in ("1", "true"))
    return Response(status_code=204)
