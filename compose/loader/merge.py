"""Merging Compose files by the specification's rules, including `!reset` and `!override`."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from compose.loader.yamlio import Override, Reset, strip_markers

Path_ = tuple[str, ...]

# Replaced wholesale by the later file.
_REPLACED = ("services.*.command", "services.*.entrypoint", "services.*.healthcheck.test")
# Sequences or mappings of KEY=VALUE, merged by key.
_KEYED_MAPPINGS = (
    "services.*.environment", "services.*.labels", "services.*.annotations", "services.*.sysctls",
    "services.*.build.args", "services.*.build.labels", "services.*.build.additional_contexts",
    "services.*.deploy.labels", "services.*.extra_hosts", "services.*.build.extra_hosts",
    "networks.*.labels", "volumes.*.labels", "secrets.*.labels", "configs.*.labels",
)
# Fields that are a string or a list: made lists before merging.
_STRING_OR_LIST = ("services.*.dns", "services.*.dns_search", "services.*.tmpfs", "services.*.env_file",
                   "services.*.label_file")
# Mapping-or-list fields: lists become mappings of name -> None before merging.
_NAMES_TO_MAPPING = ("services.*.depends_on", "services.*.networks")


def _matches(path: Path_, pattern: str) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p in ("*", q) for p, q in zip(parts, path, strict=True))


def _any_match(path: Path_, patterns: tuple[str, ...]) -> bool:
    return any(_matches(path, p) for p in patterns)


def _split_key(item: Any, sep: str = "=") -> tuple[str, Any]:
    text = str(item)
    if sep in text:
        key, value = text.split(sep, 1)
        return key, value
    return text, None


def _to_keyed_mapping(value: Any, path: Path_) -> Any:
    if not isinstance(value, list):
        return value
    extra_hosts = path[-1] == "extra_hosts"
    result: dict[str, Any] = {}
    for item in value:
        if extra_hosts:
            key, host = _split_key(item, "=" if "=" in str(item) else ":")
        else:
            key, host = _split_key(item)
        result[key] = host
    return result


def _port_key(item: Any) -> Hashable:
    if isinstance(item, dict):
        return (item.get("host_ip", ""), str(item.get("published", "")), str(item.get("target")),
                item.get("protocol", "tcp"))
    text = str(item)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    head, _, target = text.rpartition(":")
    host_ip, _, published = head.rpartition(":")
    return (host_ip.strip("[]"), published, target, proto)


def _volume_key(item: Any) -> Hashable:
    if isinstance(item, dict):
        return item.get("target")
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _mount_key(default_dir: str) -> Callable[[Any], Hashable]:
    def key(item: Any) -> Hashable:
        if isinstance(item, dict):
            return item.get("target") or f"{default_dir}/{item.get('source')}"
        return f"{default_dir}/{item}"

    return key


def _env_file_key(item: Any) -> Hashable:
    return item.get("path") if isinstance(item, dict) else item


def _plain_key(item: Any) -> Hashable:
    return str(item)


_INDEXERS: dict[str, Callable[[Any], Hashable]] = {
    "services.*.ports": _port_key,
    "services.*.volumes": _volume_key,
    "services.*.devices": _volume_key,
    "services.*.secrets": _mount_key("/run/secrets"),
    "services.*.configs": _mount_key(""),
    "services.*.env_file": _env_file_key,
    "services.*.label_file": _plain_key,
    "services.*.expose": _plain_key,
    "services.*.cap_add": _plain_key,
    "services.*.cap_drop": _plain_key,
    "services.*.dns": _plain_key,
    "services.*.dns_opt": _plain_key,
    "services.*.dns_search": _plain_key,
    "services.*.tmpfs": _plain_key,
    "services.*.links": _plain_key,
    "services.*.profiles": _plain_key,
    "services.*.security_opt": _plain_key,
    "services.*.volumes_from": _plain_key,
    "services.*.networks.*.aliases": _plain_key,
    "services.*.build.tags": _plain_key,
    "services.*.build.cache_from": _plain_key,
}


def _indexer(path: Path_) -> Callable[[Any], Hashable] | None:
    return next((fn for pattern, fn in _INDEXERS.items() if _matches(path, pattern)), None)


def _merge_sequences(left: list[Any], right: list[Any], path: Path_) -> list[Any]:
    indexer = _indexer(path)
    if indexer is None:
        return [*left, *right]
    merged = list(left)
    positions = {indexer(item): i for i, item in enumerate(merged)}
    for item in right:
        key = indexer(item)
        if key in positions:
            merged[positions[key]] = item
        else:
            positions[key] = len(merged)
            merged.append(item)
    return merged


def _prepare(value: Any, path: Path_) -> Any:
    """Bring both sides of a merge to one shape (lists of KEY=VALUE to mappings, etc.)."""
    if _any_match(path, _KEYED_MAPPINGS):
        return _to_keyed_mapping(value, path)
    if _any_match(path, _STRING_OR_LIST) and isinstance(value, str):
        return [value]
    if _any_match(path, _NAMES_TO_MAPPING) and isinstance(value, list):
        return {str(name): None for name in value}
    return value


def _merge_logging(left: dict[str, Any], right: dict[str, Any], path: Path_) -> dict[str, Any]:
    same_driver = right.get("driver") in (None, left.get("driver"))
    if not same_driver:
        return strip_markers(right)  # type: ignore[no-any-return]
    return _merge_mappings(left, right, path)


def _merge_mappings(left: dict[str, Any], right: dict[str, Any], path: Path_) -> dict[str, Any]:
    merged = dict(left)
    for key, value in right.items():
        child = (*path, str(key))
        if isinstance(value, Reset):
            merged.pop(key, None)
        elif key in merged:
            merged[key] = merge_values(merged[key], value, child)
        else:
            merged[key] = strip_markers(_prepare(value, child))
    return merged


def merge_values(left: Any, right: Any, path: Path_ = ()) -> Any:
    """Merge `right` (a later file) over `left` at `path` (e.g. ('services', 'web'))."""
    if isinstance(right, Override):
        return strip_markers(_prepare(right.value, path))
    if _any_match(path, _REPLACED):
        return strip_markers(right)
    left, right = _prepare(left, path), _prepare(right, path)
    if isinstance(left, dict) and isinstance(right, dict):
        if _matches(path, "services.*.logging"):
            return _merge_logging(left, right, path)
        return _merge_mappings(left, right, path)
    if isinstance(left, list) and isinstance(right, list):
        return _merge_sequences(left, strip_markers(right), path)
    return strip_markers(right)


def merge_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge parsed Compose files in order; markers are resolved and gone afterwards."""
    merged: dict[str, Any] = {}
    for document in documents:
        merged = merge_values(merged, document)
    return strip_markers(merged)  # type: ignore[no-any-return]
