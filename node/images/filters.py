"""`--filter` for image lists (Docker's `dangling`, `reference`, `label`, `before`, `since`). Pure."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping, Sequence

from node.errors import InvalidArgument
from node.images.model import Image
from node.images.refs import split_familiar

KNOWN = ("dangling", "reference", "label", "before", "since")
Filters = Mapping[str, Sequence[str]]


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """The API's `filters` JSON: `{"dangling":["true"]}` or the old `{"dangling":{"true":true}}`."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidArgument(f"invalid filters: {text!r} is not JSON") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out = {str(k): list(v) if isinstance(v, list) else [x for x, on in dict(v).items() if on] for k, v in raw.items()}
    unknown = sorted(set(out) - set(KNOWN))
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    return out


def filter_images(images: Sequence[Image], filters: Filters, *, resolve: Callable[[str], Image]) -> list[Image]:
    """The images matching every filter; within one filter name, any of its values."""
    checks = [_check(name, values, resolve) for name, values in filters.items() if values]
    return [image for image in images if all(check(image) for check in checks)]


def _check(name: str, values: Sequence[str], resolve: Callable[[str], Image]) -> Callable[[Image], bool]:
    if name == "dangling":
        wanted = _bool(values[-1])
        return lambda image: (not image.repo_tags) == wanted
    if name == "reference":
        return lambda image: any(_reference_matches(tag, v) for tag in image.repo_tags for v in values)
    if name == "label":
        return lambda image: all(_label_matches(image, v) for v in values)
    pivot = resolve(values[-1]).created
    if name == "before":
        return lambda image: image.created < pivot
    return lambda image: image.created > pivot


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter 'dangling={text}': expected true or false")


def _reference_matches(tag: str, pattern: str) -> bool:
    repo, _tag = split_familiar(tag)
    if ":" in pattern.rsplit("/", 1)[-1]:
        return fnmatch.fnmatchcase(tag, pattern)
    return fnmatch.fnmatchcase(repo, pattern)


def _label_matches(image: Image, spec: str) -> bool:
    labels = (image.config.get("config") or {}).get("Labels") or {}
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)
