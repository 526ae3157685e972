"""`/_ping`, `/version`, `/info`: the engine's identity and health."""

from __future__ import annotations

import platform
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from node.api.app import engine_of
from node.version import API_VERSION, ENGINE_VERSION, MIN_API_VERSION

router = APIRouter()

_PING_HEADERS = {"API-Version": API_VERSION, "OSType": "linux", "Cache-Control": "no-cache"}


@router.get("/_ping", response_class=PlainTextResponse)
@router.head("/_ping", response_class=PlainTextResponse)
def ping() -> PlainTextResponse:
    return PlainTextResponse("OK", headers=_PING_HEADERS)


@router.get("/version")
def version() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "Platform": {"Name": "pynode Engine"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION}}],
        "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": uname.machine,
        "KernelVersion": uname.release,
    }


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    return engine_of(request).info()
