"""Image references as Docker reads them: `busybox` == `busybox:latest` == `docker.io/library/busybox:latest`.

Pure functions, no I/O: parsing, normalising to the full name, and back to the familiar name users see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from node.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_HEX_PREFIX = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference: `domain/path`, an optional tag and an optional digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: `busybox`, `me/app`, `reg:5000/app`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        return self.path.removeprefix(OFFICIAL_PREFIX)

    def with_default_tag(self) -> Reference:
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG)
        return self

    @property
    def familiar(self) -> str:
        """`busybox:latest` (the tag is defaulted), or `busybox@sha256:...` for a digest reference."""
        ref = self.with_default_tag()
        text = ref.familiar_name
        if ref.tag:
            text += f":{ref.tag}"
        if ref.digest:
            text += f"@{ref.digest}"
        return text

    @property
    def full(self) -> str:
        ref = self.with_default_tag()
        text = ref.name + (f":{ref.tag}" if ref.tag else "")
        return text + (f"@{ref.digest}" if ref.digest else "")


def parse_reference(text: str) -> Reference:
    """Parse and normalise `[domain/]path[:tag][@digest]`; InvalidArgument names what is wrong."""
    if not text or text != text.strip():
        raise InvalidArgument(f"invalid reference format: {text!r}")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidArgument(f"invalid reference format: {text}: bad digest")
    name, tag = _split_tag(remainder)
    if tag is not None and not _TAG.match(tag):
        raise InvalidArgument(f"invalid reference format: {text}: bad tag {tag!r}")
    domain, path = _split_domain(name)
    if any(c.isupper() for c in path):
        raise InvalidArgument(f"invalid reference format: repository name ({name}) must be lowercase")
    if not path or not all(_COMPONENT.match(part) for part in path.split("/")):
        raise InvalidArgument(f"invalid reference format: {text}")
    return Reference(domain, path, tag, digest)


def _split_tag(text: str) -> tuple[str, str | None]:
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1:]
    return text, None


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def normalize_tag(text: str) -> str:
    """The familiar, tagged form a tag is stored under: `busybox` -> `busybox:latest`."""
    ref = parse_reference(text)
    if ref.digest:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {text}")
    return ref.familiar


def split_familiar(tagged: str) -> tuple[str, str]:
    """`busybox:latest` -> ("busybox", "latest"); `<none>:<none>` passes through."""
    name, tag = _split_tag(tagged)
    return name, tag or DEFAULT_TAG


def id_prefix(text: str) -> str | None:
    """The hex of an image ID or ID prefix (`sha256:` optional), or None when `text` cannot be one."""
    match = _HEX_PREFIX.match(text)
    return match.group(1) if match else None


def is_full_id(text: str) -> bool:
    return bool(_HEX64.match(text.removeprefix("sha256:")))


def short_id(image_id: str) -> str:
    """Docker's 12-character ID: `sha256:4a5e...` -> `4a5e...` (12 hex)."""
    return image_id.removeprefix("sha256:")[:12]
