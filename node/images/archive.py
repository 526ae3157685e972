"""Image archives: reading docker-archive and OCI image-layout tars, writing Docker 25+'s combined layout.

Reading works on a spooled, uncompressed outer tar (random access by member offset). The result is a
plan (`ArchiveImage`: config bytes, tags, where each layer's bytes are and what they must hash to); the
store extracts and verifies. Writing is a generator of tar bytes carrying `manifest.json` + `repositories`
(docker-archive) and `index.json` + `oci-layout` (OCI layout), blobs under `blobs/sha256/`.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from node.errors import EngineFailure, InvalidArgument
from node.images.model import (
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    go_arch,
    hex_of,
    sha256_digest,
)
from node.images.refs import parse_reference
from node.images.streams import SectionReader

_INDEX_TYPES = {MEDIA_OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"}


class BadArchive(InvalidArgument):
    """The archive is not a docker-archive or OCI layout tar, or names something it does not hold."""


@dataclass(frozen=True, slots=True)
class LayerSource:
    """Where one layer's bytes are in the outer tar, and the digest its blob must have (if named by one)."""

    member: str
    offset: int
    size: int
    blob_digest: str | None


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    config: bytes
    tags: tuple[str, ...]
    layers: tuple[LayerSource, ...]

    @property
    def id(self) -> str:
        return sha256_digest(self.config)


class ArchiveReader:
    """An opened outer tar: member lookup with symlink resolution (legacy docker save links duplicates)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        try:
            with tarfile.open(fileobj=fh, mode="r:") as tar:
                members = tar.getmembers()
        except (tarfile.TarError, EOFError) as exc:
            raise BadArchive(f"invalid archive: {_tar_error(exc)}") from None
        self.members = {_norm(m.name): m for m in members}
        self._check_not_truncated()

    def _check_not_truncated(self) -> None:
        end = max((m.offset_data + m.size for m in self.members.values()), default=0)
        self._fh.seek(0, 2)
        if self._fh.tell() < end:
            raise BadArchive("invalid archive: unexpected end of file (truncated tar)")

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def read(self, name: str, *, limit: int = 64 << 20) -> bytes:
        member = self.member(name)
        if member.size > limit:
            raise BadArchive(f"invalid archive: {name} is too large")
        return SectionReader(self._fh, member.offset_data, member.size).read()

    def member(self, name: str) -> tarfile.TarInfo:
        found = self._find(name)
        if found is None:
            raise BadArchive(f"invalid archive: {name} is named but missing from the archive")
        return found

    def layer(self, name: str, blob_digest: str | None) -> LayerSource:
        member = self.member(name)
        return LayerSource(name, member.offset_data, member.size, blob_digest)

    def _find(self, name: str) -> tarfile.TarInfo | None:
        name = _norm(name)
        for _ in range(16):
            member = self.members.get(name)
            if member is None or not (member.issym() or member.islnk()):
                return member if member is None or member.isfile() else None
            base = posixpath.dirname(name) if member.issym() else ""
            name = _norm(posixpath.join(base, member.linkname))
        return None

    def section(self, source: LayerSource) -> SectionReader:
        return SectionReader(self._fh, source.offset, source.size)


def read_archive(reader: ArchiveReader) -> list[ArchiveImage]:
    """The images in the archive: from `manifest.json` when present, else from the OCI `index.json`."""
    if reader.has("manifest.json"):
        return _docker_images(reader)
    if reader.has("index.json"):
        return _oci_images(reader)
    raise BadArchive("invalid archive: neither manifest.json nor index.json found (not an image archive)")


def _docker_images(reader: ArchiveReader) -> list[ArchiveImage]:
    entries = _json(reader, "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise BadArchive("invalid archive: manifest.json is not a list of images")
    images = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise BadArchive("invalid archive: manifest.json entry without Config")
        config_name = entry["Config"]
        config = reader.read(config_name)
        expected = _digest_in_name(config_name)
        if expected and sha256_digest(config) != expected:
            raise BadArchive(f"invalid archive: {config_name} does not match its digest")
        layers = tuple(reader.layer(name, _digest_in_name(name)) for name in entry.get("Layers") or [])
        tags = tuple(_valid_tag(t) for t in entry.get("RepoTags") or [])
        images.append(ArchiveImage(config, tags, layers))
    return images


def _oci_images(reader: ArchiveReader) -> list[ArchiveImage]:
    index = _json(reader, "index.json")
    images = []
    for descriptor in index.get("manifests") or []:
        manifest_desc = _platform_manifest(reader, descriptor)
        manifest = _blob_json(reader, manifest_desc["digest"])
        config_digest = manifest.get("config", {}).get("digest", "")
        config = _blob(reader, config_digest)
        layers = tuple(
            reader.layer(_blob_path(layer["digest"]), layer["digest"]) for layer in manifest.get("layers") or []
        )
        tag = _oci_tag(descriptor.get("annotations") or {})
        images.append(ArchiveImage(config, (tag,) if tag else (), layers))
    if not images:
        raise BadArchive("invalid archive: index.json lists no manifests")
    return images


def _platform_manifest(reader: ArchiveReader, descriptor: dict[str, Any]) -> dict[str, Any]:
    """Follow nested indexes down to this machine's linux manifest."""
    for _ in range(4):
        if descriptor.get("mediaType") not in _INDEX_TYPES:
            return descriptor
        nested = _blob_json(reader, descriptor["digest"]).get("manifests") or []
        matching = [d for d in nested if (d.get("platform") or {}).get("architecture") in (go_arch(), None)
                    and (d.get("platform") or {}).get("os") in ("linux", None)]
        if not matching:
            raise BadArchive(f"invalid archive: no linux/{go_arch()} manifest in the index")
        descriptor = matching[0]
    raise BadArchive("invalid archive: image indexes nested too deep")


def _oci_tag(annotations: dict[str, str]) -> str | None:
    name = annotations.get("io.containerd.image.name")
    if name:
        return _valid_tag(name)
    ref_name = annotations.get("org.opencontainers.image.ref.name", "")
    if ":" in ref_name or "/" in ref_name:
        return _valid_tag(ref_name)
    return None


def _valid_tag(text: str) -> str:
    try:
        ref = parse_reference(text)
    except InvalidArgument as exc:
        raise BadArchive(f"invalid archive: bad image name {text!r}: {exc}") from None
    return ref.familiar


def _json(reader: ArchiveReader, name: str) -> Any:
    try:
        return json.loads(reader.read(name))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadArchive(f"invalid archive: {name} is not valid JSON") from None


def _blob(reader: ArchiveReader, digest: str) -> bytes:
    data = reader.read(_blob_path(digest))
    if sha256_digest(data) != digest:
        raise BadArchive(f"invalid archive: blob {digest} does not match its digest")
    return data


def _blob_json(reader: ArchiveReader, digest: str) -> Any:
    try:
        return json.loads(_blob(reader, digest))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadArchive(f"invalid archive: blob {digest} is not valid JSON") from None


def _blob_path(digest: str) -> str:
    try:
        return f"blobs/sha256/{hex_of(digest)}"
    except ValueError:
        raise BadArchive(f"invalid archive: unsupported digest {digest!r}") from None


def _digest_in_name(name: str) -> str | None:
    parts = _norm(name).split("/")
    if len(parts) == 3 and parts[:2] == ["blobs", "sha256"]:
        try:
            return f"sha256:{hex_of('sha256:' + parts[2])}"
        except ValueError:
            return None
    return None


def _norm(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


def _tar_error(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, EOFError) or "unexpected end" in text:
        return "unexpected end of file (truncated tar)"
    return text or type(exc).__name__


# --- writing -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SaveLayer:
    diff_id: str
    size: int
    open: Callable[[], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class SaveImage:
    config: bytes
    manifest: bytes
    tags: tuple[str, ...]
    layers: tuple[SaveLayer, ...] = field(default=())


def iter_save_archive(images: Sequence[SaveImage], *, mtime: int = 0) -> Iterator[bytes]:
    """The tar bytes of a save of `images`, deterministic for the same images and tags."""
    written: set[str] = set()
    yield _dir_header("blobs/", mtime)
    yield _dir_header("blobs/sha256/", mtime)
    for image in images:
        for layer in image.layers:
            if layer.diff_id not in written:
                written.add(layer.diff_id)
                yield from _stream_member(_blob_path(layer.diff_id), layer.size, layer.open(), mtime)
        for blob in (image.config, image.manifest):
            digest = sha256_digest(blob)
            if digest not in written:
                written.add(digest)
                yield from _member(_blob_path(digest), blob, mtime)
    yield from _member("index.json", _index_json(images), mtime)
    yield from _member("manifest.json", _manifest_json(images), mtime)
    yield from _member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', mtime)
    yield from _member("repositories", _repositories_json(images), mtime)
    yield bytes(tarfile.RECORDSIZE)


def _index_json(images: Sequence[SaveImage]) -> bytes:
    manifests = []
    for image in images:
        base = {"mediaType": MEDIA_OCI_MANIFEST, "digest": sha256_digest(image.manifest), "size": len(image.manifest)}
        if not image.tags:
            manifests.append(base)
        for tag in image.tags:
            ref = parse_reference(tag)
            manifests.append({**base, "annotations": {
                "io.containerd.image.name": ref.full, "org.opencontainers.image.ref.name": ref.tag or "latest"}})
    return _dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": manifests})


def _manifest_json(images: Sequence[SaveImage]) -> bytes:
    return _dumps([{
        "Config": _blob_path(sha256_digest(image.config)),
        "RepoTags": list(image.tags) or None,
        "Layers": [_blob_path(layer.diff_id) for layer in image.layers],
    } for image in images])


def _repositories_json(images: Sequence[SaveImage]) -> bytes:
    repos: dict[str, dict[str, str]] = {}
    for image in images:
        if not image.layers:
            continue
        for tag in image.tags:
            name, _, tag_part = tag.rpartition(":")
            repos.setdefault(name, {})[tag_part] = hex_of(image.layers[-1].diff_id)
    return _dumps(repos)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uname = info.gname = ""
    return info


def _dir_header(name: str, mtime: int) -> bytes:
    info = _info(name, 0, mtime)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info.tobuf(tarfile.PAX_FORMAT)


def _member(name: str, data: bytes, mtime: int) -> Iterator[bytes]:
    yield _info(name, len(data), mtime).tobuf(tarfile.PAX_FORMAT)
    yield data + bytes(-len(data) % tarfile.BLOCKSIZE)


def _stream_member(name: str, size: int, chunks: Iterable[bytes], mtime: int) -> Iterator[bytes]:
    yield _info(name, size, mtime).tobuf(tarfile.PAX_FORMAT)
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        yield chunk
    if sent != size:
        raise EngineFailure(f"layer {name}: {sent} bytes where {size} were expected")
    pad = -size % tarfile.BLOCKSIZE
    if pad:
        yield bytes(pad)
