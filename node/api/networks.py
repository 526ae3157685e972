"""`/networks`: Docker's network routes (list, inspect, create, remove, connect, disconnect, prune)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Body, Request, Response

from node.api.app import engine_of
from node.errors import InvalidArgument, NotFound
from node.network.model import Network
from node.network.service import NetworkService

router = APIRouter()


def _service(request: Request) -> NetworkService:
    service: NetworkService = engine_of(request).networks
    return service


def _filters(raw: str | None) -> dict[str, list[str]]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"invalid filters: {raw}") from exc
    return {k: (list(v) if isinstance(v, list) else [k2 for k2, on in v.items() if on]) for k, v in data.items()}


def _label_matches(labels: dict[str, str], want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _matches_one(network: Network, key: str, value: str) -> bool:
    if key == "name":
        return value in network.name
    if key == "id":
        return network.id.startswith(value)
    if key == "driver":
        return network.driver == value
    if key == "scope":
        return value == ("swarm" if network.driver == "overlay" else "local")
    if key == "type":
        return value == ("builtin" if network.is_predefined else "custom")
    if key == "label":
        return _label_matches(network.labels, value)
    raise InvalidArgument(f"invalid filter '{key}'")


def _matches(network: Network, filters: dict[str, list[str]]) -> bool:
    return all(any(_matches_one(network, key, v) for v in values)
               for key, values in filters.items() if key != "dangling")


@router.get("/networks")
def list_networks(request: Request, filters: str | None = None) -> list[dict[str, Any]]:
    service = _service(request)
    wanted = _filters(filters)
    out = [service.inspect(n) for n in service.list_networks() if _matches(n, wanted)]
    if "dangling" in wanted:
        dangling = wanted["dangling"][0] in ("true", "1")
        out = [n for n in out if (not n["Containers"] and n["Name"] not in ("bridge", "host", "none")) == dangling]
    return out


@router.get("/networks/{ref}")
def inspect_network(request: Request, ref: str) -> dict[str, Any]:
    service = _service(request)
    return service.inspect(service.find(ref))


@router.post("/networks/create", status_code=201)
def create_network(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
    name = str(body.get("Name") or "")
    if not name:
        raise InvalidArgument("network name is required")
    ipam = ((body.get("IPAM") or {}).get("Config") or [{}])
    if len(ipam) > 1:
        raise InvalidArgument("only one IPAM config (one IPv4 subnet) per network is supported")
    config = ipam[0] if ipam else {}
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported")
    network = _service(request).create_network(
        name, driver=str(body.get("Driver") or "bridge"), subnet=config.get("Subnet") or None,
        gateway=config.get("Gateway") or None, ip_range=config.get("IPRange") or None,
        internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
        options={str(k): str(v) for k, v in (body.get("Options") or {}).items()},
        labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
    )
    return {"Id": network.id, "Warning": ""}


@router.delete("/networks/{ref}", status_code=204)
def remove_network(request: Request, ref: str) -> Response:
    _service(request).remove_network(ref)
    return Response(status_code=204)


def _known(request: Request, container: str) -> None:
    """Without the container service's own connect, only a full ID with a sandbox of ours is accepted."""
    if _service(request).sandbox_path(container) is None:
        raise NotFound(f"No such container: {container}")


@router.post("/networks/{ref}/connect")
async def connect(request: Request, ref: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
    """Connect a container: the container service resolves it, records the network in its config and, if it
    runs, plugs it in now. Without a container service only a full ID with a sandbox of ours is accepted."""
    container = str(body.get("Container") or "")
    if not container:
        raise InvalidArgument("Container is required")
    containers = getattr(engine_of(request), "containers", None)
    settings = body.get("EndpointConfig") or {}
    ipam = settings.get("IPAMConfig") or {}
    aliases, address = settings.get("Aliases") or (), ipam.get("IPv4Address") or None
    if containers is not None and hasattr(containers, "connect_network"):
        await containers.connect_network(container, ref, aliases=aliases, ipv4_address=address)
    else:
        _known(request, container)
        await asyncio.to_thread(_service(request).connect, container, ref, aliases=aliases, ipv4_address=address)
    return Response(status_code=200)


@router.post("/networks/{ref}/disconnect")
async def disconnect(request: Request, ref: str, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
    container = str(body.get("Container") or "")
    if not container:
        raise InvalidArgument("Container is required")
    containers = getattr(engine_of(request), "containers", None)
    force = bool(body.get("Force"))
    if containers is not None and hasattr(containers, "disconnect_network"):
        await containers.disconnect_network(container, ref, force=force)
    else:
        _known(request, container)
        await asyncio.to_thread(_service(request).disconnect, container, ref, force=force)
    return Response(status_code=200)


@router.post("/networks/prune")
def prune(request: Request, filters: str | None = None) -> dict[str, list[str]]:
    labels = _filters(filters).get("label", [])
    return {"NetworksDeleted": _service(request).prune(labels=labels)}
