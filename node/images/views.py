"""Docker Engine API shapes of images: `/images/json` summaries, `/images/{name}/json`, history rows."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from node.images.model import Image


def unix_time(created: str) -> int:
    """RFC 3339 (nanoseconds allowed, `Z` or an offset) -> Unix seconds; 0 when missing or malformed."""
    if not created:
        return 0
    text = created.replace("Z", "+00:00")
    main, _, rest = text.partition(".")
    if rest:
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        zone = rest[len(digits):]
        text = main + zone
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def summary(image: Image, *, containers: int = -1, shared_size: int = -1) -> dict[str, Any]:
    cfg = image.config.get("config") or {}
    return {
        "Id": image.id, "ParentId": "", "RepoTags": list(image.repo_tags), "RepoDigests": list(image.repo_digests),
        "Created": unix_time(image.created), "Size": image.size, "VirtualSize": image.size,
        "SharedSize": shared_size, "Labels": cfg.get("Labels") or {}, "Containers": containers,
    }


def inspect(image: Image, *, graph_driver: dict[str, Any], descriptor: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker's ImageInspect; `Descriptor` (API 1.48's field) is the image's own manifest, what `save` exports."""
    config = image.config
    extra = {"Descriptor": descriptor} if descriptor else {}
    return {
        "Id": image.id, **extra, "RepoTags": list(image.repo_tags), "RepoDigests": list(image.repo_digests),
        "Parent": "",
        "Comment": _last_comment(config), "Created": image.created, "Container": "",
        "DockerVersion": "", "Author": config.get("author", ""), "Config": _docker_config(config.get("config")),
        "Architecture": config.get("architecture", ""), "Variant": config.get("variant"),
        "Os": config.get("os", ""), "Size": image.size, "VirtualSize": image.size,
        "GraphDriver": graph_driver,
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def history(image: Image, layer_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Newest first, as Docker lists it; each non-empty history entry takes the next layer's size."""
    entries = image.config.get("history") or [{} for _ in image.diff_ids]
    sizes = iter(layer_sizes)
    rows = []
    for entry in entries:
        size = 0 if entry.get("empty_layer") else next(sizes, 0)
        rows.append({
            "Id": "<missing>", "Created": unix_time(entry.get("created", "")),
            "CreatedBy": entry.get("created_by", ""), "Tags": None, "Size": size,
            "Comment": entry.get("comment", ""),
        })
    rows.reverse()
    if rows:
        rows[0]["Id"] = image.id
        rows[0]["Tags"] = list(image.repo_tags) or None
    return rows


def _docker_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    cfg = dict(cfg or {})
    defaults: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
        "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": None,
    }
    return {**defaults, **cfg}


def _last_comment(config: dict[str, Any]) -> str:
    history_entries = config.get("history") or []
    return str(history_entries[-1].get("comment", "")) if history_entries else ""
