"""Overlay network extensions (not in Docker's API): what the cluster agent programs on this node.

    GET    /networks/{id}/peers              [{"IP", "MAC", "VTEP"}, ...]
    POST   /networks/{id}/peers              {"Peers": [{"IP": "10.0.1.5", "MAC": "02:42:0a:00:01:05",
                                                         "VTEP": "10.77.0.3"}]}   add or replace (by IP)
    DELETE /networks/{id}/peers              {"Peers": [{"IP": "10.0.1.5"}]} removes those; no body: all
    GET    /networks/{id}/services           [{"Name", "EndpointMode", "VIP", "Backends", "Aliases"}, ...]
    PUT    /networks/{id}/services/{name}    {"VIP": "10.0.1.2", "EndpointMode": "vip", "Backends": [...],
                                              "Aliases": [...]}   create or replace, atomically
    DELETE /networks/{id}/services/{name}
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from node.api.app import engine_of
from node.errors import InvalidArgument
from node.network.service import NetworkService

router = APIRouter()


def _service(request: Request) -> NetworkService:
    service: NetworkService = engine_of(request).networks
    return service


@router.get("/networks/{ref}/peers")
def list_peers(request: Request, ref: str) -> list[dict[str, str]]:
    return _service(request).list_peers(ref)


@router.post("/networks/{ref}/peers")
def add_peers(request: Request, ref: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    if "Peers" not in body:
        raise InvalidArgument('body must be {"Peers": [{"IP": ..., "MAC": ..., "VTEP": ...}]}')
    return {"Peers": _service(request).add_peers(ref, body["Peers"])}


@router.delete("/networks/{ref}/peers")
def remove_peers(request: Request, ref: str, body: dict[str, Any] | None = Body(None)) -> dict[str, Any]:  # noqa: B008
    addresses = None
    if body and body.get("Peers") is not None:
        peers = body["Peers"]
        if not isinstance(peers, list) or not all(isinstance(p, dict) and p.get("IP") for p in peers):
            raise InvalidArgument('body must be {"Peers": [{"IP": ...}, ...]} (no body removes every peer)')
        addresses = [str(p["IP"]) for p in peers]
    return {"Peers": _service(request).remove_peers(ref, addresses)}


@router.get("/networks/{ref}/services")
def list_services(request: Request, ref: str) -> list[dict[str, Any]]:
    return _service(request).list_services(ref)


@router.put("/networks/{ref}/services/{name}")
def set_service(request: Request, ref: str, name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    return _service(request).set_service(ref, name, body)


@router.delete("/networks/{ref}/services/{name}", status_code=204)
def remove_service(request: Request, ref: str, name: str) -> Response:
    _service(request).remove_service(ref, name)
    return Response(status_code=204)
