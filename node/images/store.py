"""The image store: content-addressed blobs, OCI configs and manifests, tags, and refcounted layers.

On disk under `<data-root>/image/`: `blobs/sha256/<hex>` (configs and manifests), `imagedb/<hex>.json`
(one file per image: its manifest digest), `layerdb/<chain-hex>/{layer.json,tar-split}` (a layer's diff
id, parent, sizes and the record to rebuild its tar), `layerdb/refcounts.json` (chain id -> image ids),
`repositories.json` (tags, Docker's format) and `tmp/` (spooled uploads). Layer files live in the
overlay2 driver's directories, one per chain id.

Writes follow one order so that a failure at any point leaves the store as it was: layers are
extracted into a staging dir and renamed into place only once their digests check out; then blobs
(temp file + rename), then the image record and refcounts, and tags last. A load that fails removes
the layers it had created (those no other image or in-flight load holds).

Thread-safe: metadata changes take one store lock; extraction takes a per-layer lock only, so two loads
sharing a layer extract it once and different layers in parallel.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from node.errors import Conflict, EngineFailure, InvalidArgument, NotFound
from node.events import EventBus
from node.fsutil import read_json, write_bytes_atomic, write_json_atomic
from node.images import archive, bootstrap
from node.images.filters import filter_images
from node.images.model import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    Image,
    Layer,
    chain_ids_of,
    go_arch,
    hex_of,
    sha256_digest,
)
from node.images.pull import BadContent, PullLayer, PullPlan
from node.images.refs import Reference, id_prefix, is_full_id, parse_reference, short_id, split_familiar
from node.images.storage.overlay2 import Overlay2Driver, backing_filesystem
from node.images.streams import CountingReader, LayerStream, Readable, decompressed
from node.images.tarformat import BadLayer
from node.images.tarsplit import iter_layer_tar
from node.images.unpack import UnpackResult, unpack_layer

log = logging.getLogger(__name__)

InUseChecker = Callable[[str], list[str]]
_EXTRACT_WORKERS = min(4, os.cpu_count() or 1)


# --- progress events (the API turns them into Docker's JSON stream) ------------------------------
@dataclass(frozen=True, slots=True)
class LayerProgress:
    layer: str      # short id shown next to the bar
    current: int
    total: int
    done: bool = False
    action: str = "Loading layer"   # "Downloading" during a pull


@dataclass(frozen=True, slots=True)
class LayerStatus:
    """A layer's step without a bar: `Pulling fs layer`, `Already exists`, `Pull complete`."""

    layer: str
    status: str


@dataclass(frozen=True, slots=True)
class StatusLine:
    message: str
    id: str = ""    # Docker's `id` beside the status (`latest: Pulling from busybox`)


@dataclass(frozen=True, slots=True)
class ImageLoaded:
    image_id: str
    tag: str | None


StoreEvent = LayerProgress | LayerStatus | StatusLine | ImageLoaded


@dataclass
class _Txn:
    """Layers one operation holds (kept from removal) and those it created (removed if it fails)."""

    held: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


class ImageStore:
    """Images and layers of one data root. Public methods raise NotFound/InvalidArgument/Conflict."""

    def __init__(self, data_root: Path, *, events: EventBus | None = None) -> None:
        self.root = data_root / "image"
        self.blobs = self.root / "blobs" / "sha256"
        self.imagedb = self.root / "imagedb"
        self.layerdb = self.root / "layerdb"
        self.tmp = self.root / "tmp"
        for path in (self.blobs, self.imagedb, self.layerdb, self.tmp):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.driver = Overlay2Driver(data_root / "overlay2")
        self.events = events
        self._lock = threading.RLock()
        self._layer_locks: dict[str, threading.Lock] = {}
        self._pending: Counter[str] = Counter()
        self._in_use: InUseChecker = lambda _image_id: []
        self._images: dict[str, Image] = {}
        self._tags: dict[str, str] = {}
        self._digests: dict[str, str] = {}   # `name@sha256:...` -> image id (Docker's RepoDigests)
        self._layers: dict[str, Layer] = {}
        self._refs: dict[str, set[str]] = {}
        self._open()

    # --- the interface containers and the builder use --------------------------------------------
    def set_in_use_checker(self, checker: InUseChecker) -> None:
        """`checker(image_id)` returns the ids of containers using the image; rmi/prune consult it."""
        self._in_use = checker

    def resolve(self, ref: str) -> Image:
        """A tag (`busybox`, `busybox:1`, `docker.io/library/busybox:latest`), a full id or an id prefix.

        NotFound("No such image: ref"); InvalidArgument for an ambiguous id prefix.
        """
        with self._lock:
            image_id = self._find_id(ref)
            return self._with_tags(self._images[image_id])

    def images(self) -> list[Image]:
        """Every image, newest first (untagged builder cache images left out: see `build_cache_images`)."""
        with self._lock:
            found = [self._with_tags(image) for image in self._images.values() if not self._is_hidden(image)]
        return sorted(found, key=lambda image: (image.created, image.id), reverse=True)

    def list_images(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[Image]:
        """`docker images --filter ...`: see node.images.filters."""
        return filter_images(self.images(), filters or {}, resolve=self.resolve)

    def build_cache_images(self) -> list[Image]:
        """Builder step results no tag names (what `builder prune` removes)."""
        with self._lock:
            return [self._with_tags(image) for image in self._images.values() if self._is_hidden(image)]

    def _is_hidden(self, image: Image) -> bool:
        return image.build_cache and not self._tags_of(image.id)

    def layer(self, chain_id: str) -> Layer:
        with self._lock:
            if chain_id not in self._layers:
                raise NotFound(f"no such layer: {chain_id}")
            return self._layers[chain_id]

    def layer_diff_dirs(self, image: Image) -> list[Path]:
        """The image's layer `diff` directories, bottom layer first (overlay's lowerdir wants them reversed)."""
        return self.driver.layer_diff_dirs(image)

    def create_layer_from_tar(self, stream: Readable, parent_chain_id: str | None) -> Layer:
        """Register a layer from its tar (plain or gzip) on top of `parent_chain_id` (None: a base layer).

        For the builder: follow with `commit()`. A layer no image references is collected at daemon start.
        """
        if parent_chain_id is not None:
            self.layer(parent_chain_id)
        txn = _Txn()
        try:
            return self._add_layer_from(stream, parent=parent_chain_id, expected=None, txn=txn)
        finally:
            self._release(txn)

    def commit(self, config: dict[str, Any], *, tags: Sequence[str] = (), build_cache: bool = False) -> Image:
        """Make an image from an OCI config whose `rootfs.diff_ids` name registered layers; tag it.

        `build_cache`: a builder step's result, left out of `images()` and image prune while untagged
        (the builder prunes them); an image committed both ways stays a normal image.
        """
        config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        image = self._register(config_bytes, build_cache=build_cache)
        for tag in tags:
            self.tag(image.id, tag)
        return self.resolve(image.id)

    # --- load / import / save ------------------------------------------------------------------
    def load(self, fh: IO[bytes]) -> Iterator[StoreEvent]:
        """Load a docker-archive or OCI layout tar (gzip or plain, seekable). All or nothing."""
        plain = self._seekable_plain(fh)
        try:
            reader = archive.ArchiveReader(plain)
            plans = archive.read_archive(reader)
            yield from self._load_plans(reader, plans)
        finally:
            if plain is not fh:
                plain.close()

    def import_rootfs(self, stream: Readable, *, tag: str | None, message: str = "") -> Image:
        """`docker import`: a rootfs tar (plain or gzip) becomes a one-layer image."""
        tag_ref = parse_reference(tag).familiar if tag else None
        now = _rfc3339(time.time())
        txn = _Txn()
        try:
            layer = self._add_layer_from(stream, parent=None, expected=None, txn=txn)
            config = {
                "architecture": go_arch(), "os": "linux", "created": now, "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
                "history": [{"created": now, "comment": message or "Imported from -"}],
            }
            image = self._register(json.dumps(config, separators=(",", ":")).encode())
        except BaseException:
            self._rollback(txn)
            raise
        finally:
            self._release(txn)
        if tag_ref:
            self.tag(image.id, tag_ref)
        self._publish("import", image.id)
        return self.resolve(image.id)

    def save(self, refs: Sequence[str]) -> Iterator[bytes]:
        """The tar bytes of `docker save REF...`. Resolves every name before the first byte."""
        if not refs:
            raise InvalidArgument("save: no image named")
        wanted = self._save_selection(refs)
        with self._lock:
            chains = [c for image, _tags in wanted for c in image.chain_ids]
            txn = _Txn(held=chains)
            self._pending.update(chains)
        items = [self._save_image(image, tags) for image, tags in wanted]

        def stream() -> Iterator[bytes]:
            try:
                yield from archive.iter_save_archive(items)
            finally:
                self._release(txn)
        for image, _tags in wanted:
            self._publish("save", image.id)
        return stream()

    def bootstrap(self, name: str) -> Generator[StoreEvent, None, None]:
        """`pynode image bootstrap busybox[:TAG] | debian:SUITE`: a base image with no registry."""
        ref = parse_reference(name).with_default_tag()
        kind = ref.familiar_name
        if kind not in bootstrap.KINDS:
            raise InvalidArgument(f"cannot bootstrap {name!r}: known bases are {', '.join(bootstrap.KINDS)}")
        fd, tmp_name = tempfile.mkstemp(prefix="bootstrap-", suffix=".tar", dir=self.tmp)
        os.close(fd)
        tar_path = Path(tmp_name)
        try:
            result = bootstrap.Result()
            for line in bootstrap.build(kind, ref.tag or "latest", tar_path, result):
                yield StatusLine(line)
            yield StatusLine("Registering the root filesystem as a layer")
            with open(tar_path, "rb") as fh:
                image = self._import_with_config(fh, result.config, tag=ref.familiar)
            yield ImageLoaded(image.id, ref.familiar)
        finally:
            tar_path.unlink(missing_ok=True)

    def pull(self, plan: PullPlan) -> Iterator[StoreEvent]:
        """Register what node.images.pull.plan_pull found, as `docker pull` reports it. A layer the store has
        in the same chain position is not downloaded (`Already exists`); the others download and extract in
        parallel, checked against the manifest (blob digest, size, compression) and the config (diff id).
        Then the manifests as pulled, the image, its tag and its digest reference. All or nothing."""
        ref = plan.reference
        yield StatusLine(f"Pulling from {ref.path}", id=ref.digest or ref.tag or "latest")
        txn = _Txn()
        written: list[str] = []
        try:
            if plan.config is not None:
                yield from self._download_layers(plan, txn)
            for data in plan.manifests:
                self._write_new_blob(data, written)
            image = self._register_pulled(plan)
        except BaseException:
            for digest in written:
                (self.blobs / hex_of(digest)).unlink(missing_ok=True)
            self._rollback(txn)
            raise
        finally:
            self._release(txn)
        yield from self._name_pulled(image, plan)

    def has_image(self, image_id: str) -> bool:
        with self._lock:
            return image_id in self._images

    def descriptor(self, image: Image) -> dict[str, Any]:
        """The OCI descriptor of the image's own manifest: what `save` exports (and a manager's registry serves)."""
        try:
            size = (self.blobs / hex_of(image.manifest_digest)).stat().st_size
        except (OSError, ValueError):
            return {}
        return {"mediaType": MEDIA_OCI_MANIFEST, "digest": image.manifest_digest, "size": size}

    # --- tags and removal ------------------------------------------------------------------------
    def tag(self, source: str, target: str) -> None:
        """`docker tag SOURCE TARGET`; moving a tag leaves the old image dangling, as Docker does."""
        target_ref = parse_reference(target)
        if target_ref.digest:
            self._name_by_digest(source, target_ref, target)
            return
        if is_full_id(target) and target_ref.tag is None:
            raise InvalidArgument(f"invalid reference format: repository name ({target}) cannot be a 64-byte hex")
        with self._lock:
            image_id = self._find_id(source)
            self._tags[target_ref.familiar] = image_id
            self._write_tags()
        self._publish("tag", image_id, name=target_ref.familiar)

    def _name_by_digest(self, source: str, target_ref: Reference, target: str) -> None:
        """`name@sha256:D` as a name: only for a digest the image is known by (so it stays a true statement);
        Docker refuses every digest target, having no way to check one."""
        if target_ref.tag is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        name = f"{target_ref.familiar_name}@{target_ref.digest}"
        with self._lock:
            image_id = self._find_id(source)
            if target_ref.digest not in self._images[image_id].digests:
                raise InvalidArgument(f"refusing to create a tag with a digest reference: {target} "
                                      f"(the image is not known by that digest)")
            self._digests[name] = image_id
            self._write_tags()
        self._publish("tag", image_id, name=name)

    def remove(self, ref: str, *, force: bool = False) -> list[dict[str, str]]:
        """`docker rmi`: [{"Untagged": tag}, ..., {"Deleted": id}, ...] in Docker's order."""
        with self._lock:
            image_id = self._find_id(ref)
            tags = self._tags_of(image_id)
            by_tag = self._tag_of_ref(ref)
            if by_tag is not None and by_tag in tags:
                return self._remove_by_tag(image_id, by_tag, ref=ref, force=force)
            digested = _digest_reference(ref)
            by_digest = f"{digested.familiar_name}@{digested.digest}" if digested else None
            if by_digest is not None and self._digests.get(by_digest) == image_id:
                return self._remove_by_tag(image_id, by_digest, ref=ref, force=force)
            return self._remove_by_id(image_id, tags, force=force)

    def prune(self, *, all_images: bool = False) -> dict[str, Any]:
        """`docker image prune [-a]`: dangling (or all unused) images; returns Docker's prune response."""
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        with self._lock:
            for image in list(self._images.values()):
                tags = self._tags_of(image.id)
                if (tags and not all_images) or self._in_use(image.id) or self._is_hidden(image):
                    continue
                before = self._layers_size()
                deleted += [{"Untagged": t} for t in tags + self._digest_refs_of(image.id)]
                for t in tags:
                    self._tags.pop(t, None)
                deleted += self._delete_image(image.id)
                reclaimed += before - self._layers_size()
            self._write_tags()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # --- reports ---------------------------------------------------------------------------------
    def info_fields(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._images)
        return {"Images": count, "DriverStatus": [
            ["Backing Filesystem", backing_filesystem(self.driver.root)], ["Supports d_type", "true"],
            ["Using metacopy", "false"], ["Native Overlay Diff", "true"], ["userxattr", "false"],
        ]}

    def df_fields(self) -> dict[str, Any]:
        """`/system/df`'s image part: LayersSize and per-image SharedSize/Containers."""
        from node.images import views

        with self._lock:
            images = [self._with_tags(image) for image in self._images.values()]
            users: Counter[str] = Counter(c for image in images for c in image.chain_ids)
            rows = []
            for image in images:
                shared = sum(self._layers[c].size for c in image.chain_ids if users[c] > 1)
                rows.append(views.summary(image, containers=len(self._in_use(image.id)), shared_size=shared))
            return {"LayersSize": self._layers_size(), "Images": rows}

    def graph_driver(self, image: Image) -> dict[str, Any]:
        """Docker's GraphDriver block: the top layer's dirs, LowerDir the others (nearest first)."""
        dirs = list(reversed(self.layer_diff_dirs(image)))
        data: dict[str, str] = {}
        if dirs:
            top = dirs[0].parent
            if dirs[1:]:
                data["LowerDir"] = ":".join(str(d) for d in dirs[1:])
            data.update(MergedDir=str(top / "merged"), UpperDir=str(dirs[0]), WorkDir=str(top / "work"))
        return {"Name": self.driver.name, "Data": data}

    def layer_sizes(self, image: Image) -> list[int]:
        with self._lock:
            return [self._layers[c].size for c in image.chain_ids]

    # === internals ================================================================================
    def _open(self) -> None:
        self.driver.clean_stale()
        for leftover in self.tmp.iterdir():
            _remove_path(leftover)
        self._read_layers()
        self._read_images()
        refs = {ref: image_id for repo in (read_json(self._repositories_path(), {}) or {})
                .get("Repositories", {}).values() for ref, image_id in repo.items() if image_id in self._images}
        self._tags = {ref: image_id for ref, image_id in refs.items() if "@" not in ref}
        self._digests = {ref: image_id for ref, image_id in refs.items()
                         if "@" in ref and ref.rsplit("@", 1)[1] in self._images[image_id].digests}
        self._collect_orphans()

    def _repositories_path(self) -> Path:
        return self.root / "repositories.json"

    def _refcounts_path(self) -> Path:
        return self.layerdb / "refcounts.json"

    def _read_layers(self) -> None:
        for entry in self.layerdb.iterdir():
            meta = read_json(entry / "layer.json") if entry.is_dir() and not entry.name.startswith(".") else None
            if entry.is_dir() and entry.name.startswith("."):
                _remove_path(entry)
            if meta is None or not self.driver.has_layer(entry.name):
                continue
            self._layers[meta["chain_id"]] = Layer(
                chain_id=meta["chain_id"], diff_id=meta["diff_id"], parent=meta.get("parent"),
                size=meta["size"], tar_size=meta["tar_size"])
        refs = read_json(self._refcounts_path(), {}) or {}
        self._refs = {chain: set(ids) for chain, ids in refs.items() if chain in self._layers}

    def _read_images(self) -> None:
        for entry in self.imagedb.glob("*.json"):
            record = read_json(entry)
            image_id = f"sha256:{entry.stem}"
            try:
                config_bytes = (self.blobs / entry.stem).read_bytes()
                self._images[image_id] = replace(self._image_from(config_bytes, record["manifest"]),
                                                 build_cache=bool(record.get("build_cache")),
                                                 pulled_manifests=tuple(record.get("pulled") or ()))
            except (OSError, KeyError, ValueError, NotFound) as exc:
                log.warning("dropping unreadable image %s: %s", image_id, exc)

    def _collect_orphans(self) -> None:
        """Layers no image references (an interrupted load, a builder layer never committed)."""
        live = {c for image in self._images.values() for c in image.chain_ids}
        for chain in list(self._layers):
            if chain not in live:
                self._drop_layer(chain)
        for layer_id in self.driver.layer_ids():
            if len(layer_id) == 64 and f"sha256:{layer_id}" not in self._layers and \
                    not (self.driver.layer_dir(layer_id) / "merged").exists():
                self.driver.remove_layer(layer_id)
        self._write_refcounts()

    def _image_from(self, config_bytes: bytes, manifest_digest: str) -> Image:
        config = json.loads(config_bytes)
        diff_ids = tuple((config.get("rootfs") or {}).get("diff_ids") or [])
        chains = tuple(chain_ids_of(diff_ids))
        missing = [c for c in chains if c not in self._layers]
        if missing:
            raise NotFound(f"layer {missing[0]} is not in the store")
        return Image(
            id=sha256_digest(config_bytes), config=config, diff_ids=diff_ids, chain_ids=chains,
            created=str(config.get("created") or ""), size=sum(self._layers[c].size for c in chains),
            manifest_digest=manifest_digest,
        )

    # --- resolving --------------------------------------------------------------------------------
    def _find_id(self, ref: str) -> str:
        if is_full_id(ref):
            image_id = "sha256:" + ref.removeprefix("sha256:")
            if image_id in self._images:
                return image_id
            raise NotFound(f"No such image: {ref}")
        digested = _digest_reference(ref)
        if digested is not None:
            found = self._find_by_digest(digested)
            if found is None:
                raise NotFound(f"No such image: {ref}")
            return found
        tag = self._tag_of_ref(ref)
        if tag is not None and tag in self._tags:
            return self._tags[tag]
        prefix = id_prefix(ref)
        if prefix:
            matches = [i for i in self._images if i[len("sha256:"):].startswith(prefix)]
            if len(matches) > 1:
                raise InvalidArgument(f"ambiguous image ID prefix {ref!r}: it matches {len(matches)} images")
            if matches:
                return matches[0]
        raise NotFound(f"No such image: {ref}")

    @staticmethod
    def _tag_of_ref(ref: str) -> str | None:
        try:
            parsed = parse_reference(ref)
        except InvalidArgument:
            return None
        return None if parsed.digest else parsed.familiar

    def _tags_of(self, image_id: str) -> list[str]:
        return sorted(t for t, i in self._tags.items() if i == image_id)

    def _digest_refs_of(self, image_id: str) -> list[str]:
        return sorted(r for r, i in self._digests.items() if i == image_id)

    def _with_tags(self, image: Image) -> Image:
        return replace(image, repo_tags=tuple(self._tags_of(image.id)),
                       repo_digests=tuple(self._digest_refs_of(image.id)))

    def _find_by_digest(self, ref: Reference) -> str | None:
        """`name[:tag]@sha256:D` (the tag, as Docker does, ignored): the image with that RepoDigest, else one
        known by digest D (its own manifest or one it was pulled as) under repository `name`."""
        assert ref.digest is not None
        exact = self._digests.get(f"{ref.familiar_name}@{ref.digest}")
        if exact is not None:
            return exact
        for image in self._images.values():
            if ref.digest in image.digests and ref.familiar_name in self._repositories_of(image.id):
                return image.id
        return None

    def _repositories_of(self, image_id: str) -> set[str]:
        return {split_familiar(t)[0] for t in self._tags_of(image_id)} | \
               {r.rsplit("@", 1)[0] for r in self._digest_refs_of(image_id)}

    # --- loading ---------------------------------------------------------------------------------
    def _seekable_plain(self, fh: IO[bytes]) -> IO[bytes]:
        """The archive uncompressed: gzip input is inflated into a temp file once, for random access."""
        head = fh.read(2)
        fh.seek(0)
        if head != b"\x1f\x8b":
            return fh
        out = tempfile.TemporaryFile(dir=self.tmp)
        try:
            source = decompressed(fh)
            while chunk := source.read(1 << 20):
                out.write(chunk)
        except ValueError as exc:
            out.close()
            raise archive.BadArchive(f"invalid archive: {exc}") from None
        out.seek(0)
        return out

    def _load_plans(self, reader: archive.ArchiveReader, plans: list[archive.ArchiveImage]) -> Iterator[StoreEvent]:
        for plan in plans:
            _check_plan(plan)
        txn = _Txn()
        try:
            yield from self._run_extractions(self._plan_extractions(reader, plans, txn))
            images = [self._register(plan.config) for plan in plans]
        except BaseException:
            self._rollback(txn)
            raise
        finally:
            self._release(txn)
        for plan, image in zip(plans, images, strict=True):
            for tag in plan.tags:
                self.tag(image.id, tag)
            self._publish("load", image.id)
            if not plan.tags:
                yield ImageLoaded(image.id, None)
            for loaded_tag in plan.tags:
                yield ImageLoaded(image.id, loaded_tag)

    def _plan_extractions(self, reader: archive.ArchiveReader, plans: list[archive.ArchiveImage],
                          txn: _Txn) -> list[_Extraction]:
        """One job per layer not in the store yet (each held from removal until the load ends)."""
        jobs: list[_Extraction] = []
        seen: set[str] = set()
        for plan in plans:
            diff_ids = json.loads(plan.config)["rootfs"]["diff_ids"]
            chains = chain_ids_of(diff_ids)
            for index, (source, diff_id) in enumerate(zip(plan.layers, diff_ids, strict=True)):
                chain = chains[index]
                if chain in seen:
                    continue
                seen.add(chain)
                counted = CountingReader(reader.section(source))
                job = _Extraction(short_id(diff_id), counted, source.size, functools.partial(
                    self._add_layer_from, counted, parent=chains[index - 1] if index else None,
                    ancestors=list(reversed(chains[:index])), expected=diff_id, txn=txn,
                    blob_digest=source.blob_digest, name=source.member))
                job.done = self._hold_existing(chain, txn)
                jobs.append(job)
        return jobs

    def _run_extractions(self, jobs: list[_Extraction], *, action: str = "Loading layer") -> Iterator[LayerProgress]:
        """Extract layers in parallel (they are independent until registered); progress every 0.2 s."""
        pending = [job for job in jobs if not job.done]
        for job in jobs:
            if job.done:
                yield LayerProgress(job.label, job.total, job.total, done=True, action=action)
        if not pending:
            return
        with ThreadPoolExecutor(max_workers=_EXTRACT_WORKERS, thread_name_prefix="layer") as pool:
            futures = {pool.submit(job.run): job for job in pending}
            try:
                while futures:
                    finished, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = futures.pop(future)
                        future.result()
                        yield LayerProgress(job.label, job.total, job.total, done=True, action=action)
                    for job in futures.values():
                        yield LayerProgress(job.label, job.counter.count, job.total, action=action)
            finally:
                for future in futures:
                    future.cancel()

    # --- pulling ---------------------------------------------------------------------------------
    def _download_layers(self, plan: PullPlan, txn: _Txn) -> Iterator[StoreEvent]:
        diff_ids = _pulled_diff_ids(plan)
        chains = chain_ids_of(diff_ids)
        jobs = []
        for index, (layer, diff_id) in enumerate(zip(plan.layers, diff_ids, strict=True)):
            source = _Deferred()
            counted = CountingReader(source)
            job = _Extraction(layer.label, counted, layer.descriptor.size, functools.partial(
                self._pull_layer, layer, source, counted, parent=chains[index - 1] if index else None,
                ancestors=list(reversed(chains[:index])), expected=diff_id, txn=txn))
            job.done = self._hold_existing(chains[index], txn)
            jobs.append(job)
        for job in jobs:
            yield LayerStatus(job.label, "Already exists" if job.done else "Pulling fs layer")
        for job in jobs:
            if not job.done:
                yield LayerProgress(job.label, 0, job.total, action="Downloading")
        for event in self._run_extractions([job for job in jobs if not job.done], action="Downloading"):
            yield LayerStatus(event.layer, "Pull complete") if event.done else event

    def _pull_layer(self, layer: PullLayer, source: _Deferred, counted: CountingReader, *, parent: str | None,
                    ancestors: list[str], expected: str, txn: _Txn) -> Layer:
        """Runs in an extraction thread: the download starts here, streamed into the unpacker. The layer's lock
        is held from before the request, so concurrent pulls of one layer download it once."""
        chain = _chain_of(parent, expected)
        with self._layer_lock(chain):
            if chain in self._layers:  # another pull registered it meanwhile
                return self._layers[chain]
            with layer.open() as blob:
                source.src = blob
                return self._add_layer_from(counted, parent=parent, expected=expected, txn=txn,
                                            blob_digest=layer.descriptor.digest, name=layer.descriptor.digest,
                                            ancestors=ancestors, lock_held=True)

    def _write_new_blob(self, data: bytes, written: list[str]) -> None:
        digest = sha256_digest(data)
        if not (self.blobs / hex_of(digest)).exists():
            self._write_blob(data)
            written.append(digest)

    def _register_pulled(self, plan: PullPlan) -> Image:
        with self._lock:
            if plan.config is not None:
                image = self._register(plan.config)
            elif plan.image_id in self._images:
                image = self._images[plan.image_id]
            else:  # removed while the registry was asked
                raise NotFound(f"No such image: {plan.image_id}")
            pulled = tuple(dict.fromkeys((*image.pulled_manifests, *(sha256_digest(m) for m in plan.manifests))))
            if pulled != image.pulled_manifests:
                image = self._images[image.id] = replace(image, pulled_manifests=pulled)
                self._write_record(image)
            return image

    def _name_pulled(self, image: Image, plan: PullPlan) -> Iterator[StoreEvent]:
        """The tag (unless pulled by digest) and the digest reference `name@sha256:...`, as Docker records them."""
        ref = plan.reference
        digest_ref = f"{ref.familiar_name}@{plan.digest}"
        tag = None if ref.digest else ref.familiar
        with self._lock:
            up_to_date = (self._tags.get(tag) if tag else self._digests.get(digest_ref)) == image.id
            self._digests[digest_ref] = image.id
            if tag:
                self._tags[tag] = image.id
            self._write_tags()
        shown = tag or digest_ref
        if not up_to_date:
            self._publish("tag", image.id, name=shown)
        self._publish("pull", image.id, name=shown)
        yield StatusLine(f"Digest: {plan.digest}")
        yield StatusLine(f"Status: Image is up to date for {shown}" if up_to_date
                         else f"Status: Downloaded newer image for {shown}")

    def _hold_existing(self, chain: str, txn: _Txn) -> bool:
        with self._lock:
            self._hold(chain, txn)
            return chain in self._layers

    def _add_layer_from(self, stream: Readable, *, parent: str | None, expected: str | None, txn: _Txn,
                        blob_digest: str | None = None, name: str = "layer",
                        ancestors: Sequence[str] | None = None, lock_held: bool = False) -> Layer:
        """Extract into staging, verify, and register; reuses an existing identical layer.

        When the diff id is known beforehand the layer's lock is held during extraction, so concurrent
        loads of one layer extract it once; otherwise a lost rename race discards the later copy.
        `lock_held`: the caller holds that lock already (a pull takes it before it downloads).
        """
        known = _chain_of(parent, expected) if expected else None
        if known is not None:
            self._hold(known, txn)
        with self._layer_lock(known) if known and not lock_held else contextlib.nullcontext():
            if known is not None and known in self._layers:
                return self._layers[known]
            staging = self.driver.new_staging()
            try:
                blob = LayerStream(stream)
                result = self._unpack(blob.plain, staging / "diff", name)
                _verify_layer(result, blob, expected=expected, blob_digest=blob_digest, name=name)
                chain = _chain_of(parent, result.diff_id)
                if known is None:
                    self._hold(chain, txn)
                with self._layer_lock(chain) if known is None else contextlib.nullcontext():
                    if chain in self._layers:
                        self.driver.discard_staging(staging)
                        return self._layers[chain]
                    layer = Layer(chain_id=chain, diff_id=result.diff_id, parent=parent, size=result.size,
                                  tar_size=result.tar_size)
                    chain_ancestors = ancestors if ancestors is not None else self._ancestors_of(layer)
                    self._place_layer(staging, layer, result.tarsplit, chain_ancestors)
                    with self._lock:
                        self._layers[chain] = layer
                        txn.created.append(chain)
            except BaseException:
                self.driver.discard_staging(staging)
                raise
        return layer

    def _hold(self, chain: str, txn: _Txn) -> None:
        with self._lock:
            self._pending[chain] += 1
            txn.held.append(chain)

    def _unpack(self, plain: Readable, diff: Path, name: str) -> UnpackResult:
        try:
            return unpack_layer(plain, diff)
        except BadLayer as exc:
            raise BadLayer(f"invalid layer {name}: {exc}") from None
        except ValueError as exc:
            raise BadLayer(f"invalid layer {name}: {exc}") from None
        except OSError as exc:
            raise EngineFailure(f"extracting layer {name}: {exc}") from None

    def _place_layer(self, staging: Path, layer: Layer, tarsplit: bytes, ancestors: Sequence[str]) -> None:
        meta_dir = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.layerdb))
        final_meta = self.layerdb / hex_of(layer.chain_id)
        try:
            (meta_dir / "tar-split").write_bytes(tarsplit)
            write_json_atomic(meta_dir / "layer.json", {
                "chain_id": layer.chain_id, "diff_id": layer.diff_id, "parent": layer.parent,
                "size": layer.size, "tar_size": layer.tar_size})
            _remove_path(final_meta)
            os.rename(meta_dir, final_meta)
            self.driver.commit_staging(staging, hex_of(layer.chain_id), [hex_of(c) for c in ancestors])
        except BaseException:
            _remove_path(meta_dir)
            _remove_path(final_meta)
            raise

    def _ancestors_of(self, layer: Layer) -> list[str]:
        """Chain ids below `layer`, nearest first (its parent's line must be registered)."""
        ancestors = []
        parent = layer.parent
        while parent is not None:
            ancestors.append(parent)
            parent = self._layers[parent].parent
        return ancestors

    @contextlib.contextmanager
    def _layer_lock(self, chain: str) -> Iterator[None]:
        with self._lock:
            lock = self._layer_locks.setdefault(chain, threading.Lock())
        with lock:
            yield

    def _import_with_config(self, fh: Readable, config: dict[str, Any], *, tag: str) -> Image:
        txn = _Txn()
        try:
            layer = self._add_layer_from(fh, parent=None, expected=None, txn=txn)
            config = {**config, "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
            image = self._register(json.dumps(config, separators=(",", ":"), sort_keys=True).encode())
        except BaseException:
            self._rollback(txn)
            raise
        finally:
            self._release(txn)
        self.tag(image.id, tag)
        return image

    # --- registering and removing ----------------------------------------------------------------
    def _register(self, config_bytes: bytes, *, build_cache: bool = False) -> Image:
        """Write the config and manifest blobs and the image record; add the layers' refcounts."""
        image_id = sha256_digest(config_bytes)
        with self._lock:
            if image_id in self._images:
                image = self._images[image_id]
                if image.build_cache and not build_cache:  # made by a build and now by load/import too
                    image = self._images[image_id] = replace(image, build_cache=False)
                    self._write_record(image)
                return image
            image = self._image_from(config_bytes, "")
            manifest = self._manifest_of(image, config_bytes)
            manifest_digest = self._write_blob(manifest)
            self._write_blob(config_bytes)
            image = replace(image, manifest_digest=manifest_digest, build_cache=build_cache)
            self._write_record(image)
            self._images[image_id] = image
            for chain in image.chain_ids:
                self._refs.setdefault(chain, set()).add(image_id)
            self._write_refcounts()
            return image

    def _write_record(self, image: Image) -> None:
        record: dict[str, Any] = {"manifest": image.manifest_digest}
        if image.build_cache:
            record["build_cache"] = True
        if image.pulled_manifests:
            record["pulled"] = list(image.pulled_manifests)
        write_json_atomic(self.imagedb / f"{hex_of(image.id)}.json", record)

    def _manifest_of(self, image: Image, config_bytes: bytes) -> bytes:
        layers = [{"mediaType": MEDIA_OCI_LAYER, "digest": self._layers[c].diff_id, "size": self._layers[c].tar_size}
                  for c in image.chain_ids]
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "config": {
            "mediaType": MEDIA_OCI_CONFIG, "digest": image.id, "size": len(config_bytes)}, "layers": layers}
        return json.dumps(manifest, separators=(",", ":")).encode()

    def _write_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self.blobs / hex_of(digest)
        if not path.exists():
            write_bytes_atomic(path, data)
        return digest

    def _remove_by_tag(self, image_id: str, tag: str, *, ref: str, force: bool) -> list[dict[str, str]]:
        """Untag one name (a tag or a digest reference). As Docker does, removing a repository's last tag also
        removes that repository's digest references; the image goes when nothing names it. Without force, the
        last name of an image a container uses stays: the image would be left dangling under it."""
        if not force and self._is_single_reference(image_id):
            users = self._in_use(image_id)
            if users:
                raise Conflict(f"conflict: unable to remove repository reference \"{ref}\" (must force) - "
                               f"container {users[0][:12]} is using its referenced image {short_id(image_id)}")
        removed = [tag]
        if "@" in tag:
            self._digests.pop(tag)
        else:
            self._tags.pop(tag)
            repo = split_familiar(tag)[0]
            if repo not in {split_familiar(t)[0] for t in self._tags_of(image_id)}:
                removed += [r for r in self._digest_refs_of(image_id) if r.rsplit("@", 1)[0] == repo]
                for ref in removed[1:]:
                    self._digests.pop(ref)
        self._write_tags()
        for name in removed:
            self._publish("untag", image_id, name=name)
        out = [{"Untagged": name} for name in removed]
        if not self._tags_of(image_id) and not self._digest_refs_of(image_id) and not self._in_use(image_id):
            out += self._delete_image(image_id)
        return out

    def _is_single_reference(self, image_id: str) -> bool:
        """Docker's isSingleReference: at most one tag, and every name in that one repository."""
        tags, digests = self._tags_of(image_id), self._digest_refs_of(image_id)
        if len(tags) > 1 or not (tags or digests):
            return False
        repos = {split_familiar(t)[0] for t in tags} | {d.rsplit("@", 1)[0] for d in digests}
        return len(repos) == 1

    def _remove_by_id(self, image_id: str, tags: list[str], *, force: bool) -> list[dict[str, str]]:
        users = self._in_use(image_id)
        if not force and users:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                           f"image is being used by container {users[0][:12]}")
        if not force and len(tags) > 1:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                           "image is referenced in multiple repositories")
        names = tags + self._digest_refs_of(image_id)
        for tag in tags:
            self._tags.pop(tag)
        for ref in names[len(tags):]:
            self._digests.pop(ref)
        for name in names:
            self._publish("untag", image_id, name=name)
        self._write_tags()
        out = [{"Untagged": name} for name in names]
        if not users:
            out += self._delete_image(image_id)
        return out

    def _delete_image(self, image_id: str) -> list[dict[str, str]]:
        image = self._images.pop(image_id)
        (self.imagedb / f"{hex_of(image_id)}.json").unlink(missing_ok=True)
        for ref in self._digest_refs_of(image_id):
            self._digests.pop(ref)
        others = {d for other in self._images.values() for d in (other.manifest_digest, *other.pulled_manifests)}
        for digest in (image_id, image.manifest_digest, *image.pulled_manifests):
            if digest and digest not in others:
                (self.blobs / hex_of(digest)).unlink(missing_ok=True)
        out = [{"Deleted": image_id}]
        for chain in reversed(image.chain_ids):
            refs = self._refs.get(chain, set())
            refs.discard(image_id)
            if not refs and not self._pending[chain]:
                self._drop_layer(chain)
                out.append({"Deleted": chain})
        self._write_refcounts()
        self._publish("delete", image_id)
        return out

    def _drop_layer(self, chain: str) -> None:
        self.driver.remove_layer(hex_of(chain))
        _remove_path(self.layerdb / hex_of(chain))
        self._layers.pop(chain, None)
        self._refs.pop(chain, None)

    def _release(self, txn: _Txn) -> None:
        with self._lock:
            self._pending.subtract(txn.held)
            self._pending = +self._pending
            txn.held.clear()

    def _rollback(self, txn: _Txn) -> None:
        """Remove the layers this operation created that nothing else holds or references."""
        self._release(txn)
        with self._lock:
            for chain in reversed(txn.created):
                if not self._refs.get(chain) and not self._pending[chain] and chain in self._layers:
                    self._drop_layer(chain)
            self._pending = +self._pending
            self._write_refcounts()

    def _write_refcounts(self) -> None:
        refs = {chain: sorted(ids) for chain, ids in sorted(self._refs.items()) if ids}
        if refs or self._refcounts_path().exists():
            write_json_atomic(self._refcounts_path(), refs)

    def _write_tags(self) -> None:
        """repositories.json as Docker writes it: tags and digest references per repository."""
        repos: dict[str, dict[str, str]] = {}
        for tag, image_id in sorted(self._tags.items()):
            repos.setdefault(split_familiar(tag)[0], {})[tag] = image_id
        for ref, image_id in sorted(self._digests.items()):
            repos.setdefault(ref.rsplit("@", 1)[0], {})[ref] = image_id
        write_json_atomic(self._repositories_path(), {"Repositories": repos})

    def _layers_size(self) -> int:
        return sum(layer.size for layer in self._layers.values())

    # --- saving ----------------------------------------------------------------------------------
    def _save_selection(self, refs: Sequence[str]) -> list[tuple[Image, list[str]]]:
        """(image, tags to name it by) per distinct image, in the order first named."""
        selected: dict[str, list[str]] = {}
        with self._lock:
            for ref in refs:
                for image_id, tag in self._save_targets(ref):
                    tags = selected.setdefault(image_id, [])
                    if tag and tag not in tags:
                        tags.append(tag)
            return [(self._with_tags(self._images[i]), tags) for i, tags in selected.items()]

    def _save_targets(self, ref: str) -> list[tuple[str, str | None]]:
        tag = self._tag_of_ref(ref)
        if tag is not None and tag in self._tags:
            return [(self._tags[tag], tag)]
        with contextlib.suppress(InvalidArgument):
            parsed = parse_reference(ref)
            if parsed.tag is None and parsed.digest is None:
                repo_tags = [t for t in sorted(self._tags) if split_familiar(t)[0] == parsed.familiar_name]
                if repo_tags:
                    return [(self._tags[t], t) for t in repo_tags]
        return [(self._find_id(ref), None)]

    def _save_image(self, image: Image, tags: list[str]) -> archive.SaveImage:
        layers = tuple(self._save_layer(chain) for chain in image.chain_ids)
        config = (self.blobs / hex_of(image.id)).read_bytes()
        manifest = (self.blobs / hex_of(image.manifest_digest)).read_bytes()
        return archive.SaveImage(config, manifest, tuple(tags), layers)

    def _save_layer(self, chain: str) -> archive.SaveLayer:
        layer = self._layers[chain]
        diff = self.driver.diff_dir(hex_of(chain))
        tarsplit_path = self.layerdb / hex_of(chain) / "tar-split"

        def chunks() -> Iterable[bytes]:
            return iter_layer_tar(tarsplit_path.read_bytes(), diff)
        return archive.SaveLayer(layer.diff_id, layer.tar_size, chunks)

    def _publish(self, action: str, image_id: str, *, name: str | None = None) -> None:
        if self.events is not None:
            self.events.publish(type_="image", action=action, actor_id=image_id,
                                attributes={"name": name} if name else None)


@dataclass
class _Extraction:
    """One layer to extract during a load: `run` does it; `counter` shows how far it got."""

    label: str
    counter: CountingReader
    total: int
    run: Callable[[], Layer]
    done: bool = False


class _Deferred:
    """A stream opened later, in the thread that reads it (a layer's download starts where it is extracted)."""

    def __init__(self) -> None:
        self.src: Readable = io.BytesIO()

    def read(self, n: int = -1, /) -> bytes:
        return self.src.read(n)


def _pulled_diff_ids(plan: PullPlan) -> list[str]:
    """The config's rootfs.diff_ids, one per manifest layer, each a sha256 digest; BadContent otherwise."""
    try:
        diff_ids = json.loads(plan.config or b"")["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise BadContent(f"{plan.shown}: image config without rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(plan.layers):
        count = len(diff_ids) if isinstance(diff_ids, list) else 0
        raise BadContent(f"{plan.shown}: the config names {count} layers but the manifest lists {len(plan.layers)}")
    for diff_id in diff_ids:
        try:
            hex_of(diff_id)
        except (ValueError, AttributeError):
            raise BadContent(f"{plan.shown}: bad diff id {diff_id!r} in the image config") from None
    return diff_ids


def _check_plan(plan: archive.ArchiveImage) -> None:
    try:
        config = json.loads(plan.config)
        diff_ids = config["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise archive.BadArchive("invalid archive: image config without rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(plan.layers):
        raise archive.BadArchive(
            f"invalid archive: config names {len(diff_ids)} layers but the manifest lists {len(plan.layers)}")
    for diff_id in diff_ids:
        try:
            hex_of(diff_id)
        except (ValueError, AttributeError):
            raise archive.BadArchive(f"invalid archive: bad diff id {diff_id!r}") from None


def _verify_layer(result: UnpackResult, blob: LayerStream, *, expected: str | None,
                  blob_digest: str | None, name: str) -> None:
    try:
        actual_blob = blob.blob_digest(result.diff_id)
    except ValueError as exc:
        raise BadLayer(f"invalid layer {name}: {exc}") from None
    if expected is not None and result.diff_id != expected:
        raise BadLayer(f"invalid layer {name}: content does not match its digest "
                       f"(expected {expected}, got {result.diff_id})")
    if blob_digest is not None and actual_blob != blob_digest and result.diff_id != blob_digest:
        raise BadLayer(f"invalid layer {name}: blob does not match its digest {blob_digest}")


def _digest_reference(text: str) -> Reference | None:
    """`text` parsed when it is a digest reference (`name[:tag]@sha256:...`), else None."""
    if "@" not in text:
        return None
    try:
        ref = parse_reference(text)
    except InvalidArgument:
        return None
    return ref if ref.digest else None


def _chain_of(parent: str | None, diff_id: str) -> str:
    return diff_id if parent is None else sha256_digest(f"{parent} {diff_id}".encode())


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
