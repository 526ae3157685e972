"""What the registry serves: this manager's engine's images, through its API only, exported into the cache.

A manifest asked for by tag is the engine's current image for `name:tag` (its own manifest, the one `save`
exports and `Descriptor` names in image inspect); by digest it comes from the cache, or from the engine's
image known by `name@digest` when the cache does not have it yet. Either way an image is exported from the
engine once (`GET /images/get`, an OCI layout) and its blobs are kept by digest.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from node.client import DaemonUnavailable, EngineClient, Response
from node.errors import NodeError, NotFound
from node.images.model import MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST
from orchestrator.distribution.cache import BlobCache
from orchestrator.distribution.errors import (
    BlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    RegistryError,
    Unavailable,
)

log = logging.getLogger(__name__)

# The distribution spec's grammar for repository names and tags.
_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX,
                   "application/vnd.docker.distribution.manifest.list.v2+json")
_MANIFEST_LIMIT = 4 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedManifest:
    media_type: str
    data: bytes
    digest: str


class ImageSource:
    def __init__(self, *, engine_url: str, cache: BlobCache, timeout: float = 120.0) -> None:
        self.engine_url = engine_url
        self.cache = cache
        self.timeout = timeout

    # --- what the routes ask -----------------------------------------------------------------------
    def manifest(self, name: str, reference: str) -> ServedManifest:
        check_name(name)
        if reference.startswith("sha256:") or ":" in reference:
            cached = self._cached_manifest(reference)
            if cached is not None:
                return cached
            image = self._inspect(f"{name}@{reference}", shown=f"{name}@{reference}")
        else:
            if not _TAG.match(reference):
                raise ManifestInvalid(f"invalid tag {reference!r}")
            image = self._inspect(f"{name}:{reference}", shown=f"{name}:{reference}")
        digest, media_type = _descriptor_of(image, shown=f"{name} {reference}")
        if reference.startswith("sha256:") and digest != reference:
            raise ManifestUnknown(f"{name}@{reference} is known here under another digest")
        self._ensure_exported(str(image["Id"]), digest)
        return ServedManifest(media_type=media_type, data=self.cache.read(digest), digest=digest)

    def blob(self, digest: str) -> tuple[str, int]:
        """(path, size) of a cached blob; a blob is only here once a manifest naming it was served."""
        if not self.cache.has(digest):
            raise BlobUnknown(f"blob unknown to this registry: {digest}")
        return str(self.cache.path(digest)), self.cache.size(digest)

    # --- the engine --------------------------------------------------------------------------------
    def _inspect(self, ref: str, *, shown: str) -> dict[str, Any]:
        try:
            with EngineClient(self.engine_url, timeout=self.timeout) as client:
                found: dict[str, Any] = client.get(f"/images/{ref}/json")
        except NotFound:
            raise ManifestUnknown(f"{shown} is not an image of this manager") from None
        except DaemonUnavailable as exc:
            raise Unavailable(f"this manager's engine does not answer: {exc}") from None
        except NodeError as exc:
            raise ManifestUnknown(f"{shown}: {exc}") from None
        except OSError as exc:
            raise Unavailable(f"this manager's engine does not answer: {exc}") from None
        return found

    def _ensure_exported(self, image_id: str, digest: str) -> None:
        """The manifest `digest` and every blob it names in the cache; exported from the engine once."""
        if self._is_complete(digest):
            return
        with self.cache.locked(digest):
            if self._is_complete(digest):
                return
            log.info("registry: exporting image %s (manifest %s) from the engine", image_id[:19], digest[:19])
            try:
                with EngineClient(self.engine_url, timeout=self.timeout) as client, \
                        client.stream("GET", "/images/get", params={"names": [image_id]}) as response:
                    self._store_blobs(response)
            except NodeError as exc:
                raise Unavailable(f"cannot export {image_id[:19]} from this manager's engine: {exc}") from None
            except (OSError, tarfile.TarError) as exc:
                raise Unavailable(f"cannot export {image_id[:19]} from this manager's engine: {exc}") from None
            if not self._is_complete(digest):
                raise ManifestUnknown(f"the export of {image_id[:19]} has no manifest {digest}")

    def _store_blobs(self, response: Response) -> None:
        stream = cast(IO[bytes], _StreamFile(response.iter_raw(_CHUNK)))
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK) as tar:
            for member in tar:
                parts = member.name.lstrip("./").split("/")
                if not member.isfile() or len(parts) != 3 or parts[:2] != ["blobs", "sha256"]:
                    continue
                body = tar.extractfile(member)
                if body is None:
                    continue
                self.cache.put(f"sha256:{parts[2]}", _chunks_of(body))

    def _is_complete(self, digest: str) -> bool:
        if not self.cache.has(digest):
            return False
        try:
            manifest = json.loads(self.cache.read(digest))
            named = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
        except (ValueError, KeyError, TypeError):
            return False
        return all(self.cache.has(d) for d in named)

    def _cached_manifest(self, digest: str) -> ServedManifest | None:
        """A manifest of the cache by digest (a layer or config blob is not one)."""
        if not self.cache.has(digest) or self.cache.size(digest) > _MANIFEST_LIMIT:
            return None
        data = self.cache.read(digest)
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        media_type = body.get("mediaType") if isinstance(body, dict) else None
        if media_type not in _MANIFEST_TYPES or not self._is_complete(digest):
            return None
        return ServedManifest(media_type=str(media_type), data=data, digest=digest)


def check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > 255:
        raise NameInvalid(f"invalid repository name {name!r}")


def _descriptor_of(image: dict[str, Any], *, shown: str) -> tuple[str, str]:
    descriptor = image.get("Descriptor") or {}
    digest, media_type = descriptor.get("digest"), descriptor.get("mediaType")
    if not isinstance(digest, str) or not isinstance(media_type, str):
        raise RegistryError(f"{shown}: the engine reports no manifest descriptor for {image.get('Id')}")
    return digest, media_type


def _chunks_of(body: IO[bytes]) -> Iterator[bytes]:
    while chunk := body.read(_CHUNK):
        yield chunk


class _StreamFile:
    """Chunks as a file for tarfile's stream mode ("r|"): `read(n)` only."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = bytearray()  # deleting from its front is cheap in CPython

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._pending) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._pending += chunk
        size = len(self._pending) if n < 0 else min(n, len(self._pending))
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data
