"""Pulling images from an OCI distribution (registry v2) endpoint, as `docker pull` does.

Pure parts, unit-tested: which reference a pull names (`pull_reference`: Docker's registry-host rule lives in
node.images.refs; a name without a host is refused, no Docker Hub is reachable here), whether a host may
be spoken to in plain http (`is_insecure`, daemon.json `insecure-registries`), where its certificates are
(`find_tls_files`, Docker's certs.d layout), what a manifest or index says and which entry of an index is
this machine's (`parse_manifest`, `parse_index`, `select_platform`).

`RegistryClient` speaks the protocol over httpx (GET /v2/, manifests, blobs; digests and sizes checked);
`plan_pull` fetches and checks the manifest and config and returns a `PullPlan` whose layers the store
downloads as it extracts them (`ImageStore.pull`); `pull_image` is the whole pull as store events.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import ssl
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from node.errors import EngineFailure, InvalidArgument, NodeError, NotFound
from node.images.model import (
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    go_arch,
    hex_of,
)
from node.images.refs import DEFAULT_DOMAIN, DEFAULT_TAG, Reference, parse_reference
from node.images.streams import GZIP_MAGIC, PeekReader, Readable
from node.version import ENGINE_VERSION

if TYPE_CHECKING:
    from node.images.store import ImageStore, StoreEvent

MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
GZIP_LAYERS = frozenset({
    MEDIA_OCI_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})
PLAIN_LAYERS = frozenset({
    MEDIA_OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
})
MANIFEST_LIMIT = 4 << 20   # Docker's limit for manifests and indexes
CONFIG_LIMIT = 8 << 20
CERTS_DIR_NAMES = ("ca.crt", "client.cert", "client.key")
_CHUNK = 1 << 20


# --- errors: one line each, naming the reference or registry and the cause ----------------------------
class RegistryUnreachable(EngineFailure):
    """No answer from the registry (refused, timed out, TLS failed)."""


class ManifestUnknown(NotFound):
    """The registry has no such repository, tag or digest."""


class RegistryDenied(NodeError):
    """The registry refused us (401/403): a client certificate it accepts is needed."""

    status = 403


class BadContent(EngineFailure):
    """What the registry sent does not check out: wrong digest or size, unreadable, unsupported."""


# --- references ---------------------------------------------------------------------------------------
def pull_reference(from_image: str, tag: str | None = None) -> Reference:
    """`POST /images/create?fromImage=...&tag=...`: `tag` (a tag or `sha256:...`) overrides the name's own;
    neither: `latest`. A name with no registry host is refused with the reason."""
    ref = parse_reference(from_image)
    if tag:
        if ":" in tag:
            ref = parse_reference(f"{_bare(from_image)}@{tag}")
        else:
            ref = parse_reference(f"{_bare(from_image)}:{tag}")
    if ref.domain == DEFAULT_DOMAIN:
        raise InvalidArgument(
            f"cannot pull {from_image!r}: it names no registry host and Docker Hub is not reachable here; "
            "name a registry (as in 10.0.0.2:5000/busybox) or use `pynode load`, `pynode import` or "
            "`pynode image bootstrap`")
    if ref.digest is not None:
        _check_sha256(ref.digest, what=from_image)
        return Reference(ref.domain, ref.path, None, ref.digest)  # a digest decides; a tag beside it is ignored
    return ref.with_default_tag()


def _bare(text: str) -> str:
    """The name without its tag or digest (a port is not a tag)."""
    name = text.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def _check_sha256(digest: str, *, what: str) -> None:
    try:
        hex_of(digest)
    except ValueError:
        raise InvalidArgument(f"invalid reference format: {what}: only sha256 digests are supported") from None


def display(ref: Reference) -> str:
    """`10.0.0.2:2377/web:latest`, `10.0.0.2:2377/web@sha256:...`: how messages name what was pulled."""
    return ref.name + (f"@{ref.digest}" if ref.digest else f":{ref.tag or DEFAULT_TAG}")


# --- which transport: daemon.json insecure-registries and certs.d ----------------------------------------
def is_insecure(host: str, entries: Sequence[str]) -> bool:
    """Whether `host` (`addr[:port]`) is listed as `host[:port]` or falls in a listed CIDR (literal IPs only)."""
    if host in entries:
        return True
    address = _host_ip(host)
    if address is None:
        return False
    for entry in entries:
        if "/" in entry:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
    return False


def _host_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    name = host
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """What certs.d holds for one registry: CA roots (`*.crt`) and a client pair (`X.cert` + `X.key`)."""

    directory: Path | None = None
    cas: tuple[Path, ...] = ()
    client: tuple[Path, Path] | None = None


def find_tls_files(host: str, bases: Sequence[Path]) -> TlsFiles:
    """Docker's certs.d: the first `<base>/<host:port>/` that exists is used, whole (files are not mixed
    from several). Inside it `*.crt` are CA roots and `X.cert` needs `X.key` (ca.crt, client.cert, client.key)."""
    for base in bases:
        directory = base / host
        if not directory.is_dir():
            continue
        cas = tuple(sorted(directory.glob("*.crt")))
        client = None
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if not key.is_file():
                raise InvalidArgument(f"certs.d {directory}: missing key {key.name} for client certificate {cert.name}")
            client = client or (cert, key)
        for key in sorted(directory.glob("*.key")):
            if not key.with_suffix(".cert").is_file():
                raise InvalidArgument(f"certs.d {directory}: missing client certificate "
                                      f"{key.with_suffix('.cert').name} for key {key.name}")
        return TlsFiles(directory=directory, cas=cas, client=client)
    return TlsFiles()


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrySettings:
    """The daemon's side of pulling: `insecure` from daemon.json, certs.d bases searched in order."""

    insecure: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = ()
    timeout: float = 30.0


def settings_for(*, data_root: Path, insecure: Sequence[str], etc_dir: Path = Path("/etc/pynode")) -> RegistrySettings:
    """`<data-root>/certs.d/` first (what the cluster agent writes), then `/etc/pynode/certs.d/`."""
    return RegistrySettings(insecure=tuple(insecure), certs_dirs=(data_root / "certs.d", etc_dir / "certs.d"))


def tls_context(files: TlsFiles, *, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for ca in files.cas:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise InvalidArgument(f"certs.d: cannot load CA {ca}: {exc}") from None
    if files.client is not None:
        cert, key = files.client
        try:
            context.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as exc:
            raise InvalidArgument(f"certs.d: cannot load client certificate {cert}: {exc}") from None
    return context


# --- manifests ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64[/v8]`; empty: this machine's."""
        if not text:
            return cls(os="linux", architecture=go_arch())
        parts = text.lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_manifest(data: bytes, *, what: str) -> Manifest:
    """An OCI or Docker schema2 image manifest; BadContent names what is wrong."""
    body = _json_object(data, what=what)
    if body.get("schemaVersion") != 2:
        raise BadContent(f"{what}: unsupported manifest (schemaVersion {body.get('schemaVersion')!r})")
    config = _descriptor(body.get("config"), what=f"{what}: config")
    layers = body.get("layers")
    if not isinstance(layers, list):
        raise BadContent(f"{what}: manifest without a layers list")
    return Manifest(config=config, layers=tuple(_descriptor(layer, what=f"{what}: layer") for layer in layers))


def parse_index(data: bytes, *, what: str) -> tuple[Descriptor, ...]:
    """The entries of an OCI index or Docker manifest list, with their platforms."""
    body = _json_object(data, what=what)
    entries = body.get("manifests")
    if not isinstance(entries, list):
        raise BadContent(f"{what}: index without a manifests list")
    out = []
    for entry in entries:
        descriptor = _descriptor(entry, what=f"{what}: entry")
        raw = entry.get("platform") if isinstance(entry.get("platform"), dict) else None
        platform = None if raw is None else Platform(os=str(raw.get("os", "")),
                                                      architecture=str(raw.get("architecture", "")),
                                                      variant=str(raw.get("variant", "")))
        out.append(Descriptor(media_type=descriptor.media_type, digest=descriptor.digest, size=descriptor.size,
                              platform=platform))
    return tuple(out)


def select_platform(entries: Sequence[Descriptor], wanted: Platform, *, what: str) -> Descriptor:
    """The index entry for `wanted` (a manifest, not an attestation): the first of that os/architecture,
    with the wanted variant when one is named and present; ManifestUnknown names the platforms there are."""
    matching = [e for e in entries if e.platform is not None and e.media_type in (*MANIFEST_TYPES, *INDEX_TYPES)
                and e.platform.os == wanted.os and e.platform.architecture == wanted.architecture]
    if wanted.variant:
        matching = [e for e in matching if e.platform is not None and e.platform.variant == wanted.variant] or matching
    if matching:
        return matching[0]
    known = sorted({str(e.platform) for e in entries if e.platform is not None}) or ["none"]
    raise ManifestUnknown(f"{what}: no matching manifest for {wanted} in the manifest list entries "
                          f"(it has {', '.join(known)})")


def media_type_of(data: bytes, header: str) -> str:
    """The Content-Type the registry sent, or the manifest's own `mediaType` when it sent none we know
    (an OCI manifest may leave it out: then `manifests` tells an index from a manifest)."""
    content_type = header.split(";", 1)[0].strip()
    if content_type in (*MANIFEST_TYPES, *INDEX_TYPES):
        return content_type
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return content_type
    if not isinstance(body, dict):
        return content_type
    own = body.get("mediaType")
    if isinstance(own, str) and own:
        return own
    return MEDIA_OCI_INDEX if "manifests" in body else MEDIA_OCI_MANIFEST


def layer_is_gzip(descriptor: Descriptor, *, what: str) -> bool:
    if descriptor.media_type in GZIP_LAYERS:
        return True
    if descriptor.media_type in PLAIN_LAYERS:
        return False
    raise BadContent(f"{what}: layer {descriptor.digest} has unsupported media type {descriptor.media_type!r}")


def _json_object(data: bytes, *, what: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadContent(f"{what}: the manifest is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadContent(f"{what}: the manifest is not a JSON object")
    return body


def _descriptor(raw: Any, *, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise BadContent(f"{what}: missing descriptor")
    digest, size, media_type = raw.get("digest"), raw.get("size"), raw.get("mediaType", "")
    if not isinstance(digest, str) or not isinstance(size, int) or size < 0 or not isinstance(media_type, str):
        raise BadContent(f"{what}: descriptor without a digest or size")
    try:
        hex_of(digest)
    except ValueError:
        raise BadContent(f"{what}: unsupported digest {digest!r}") from None
    return Descriptor(media_type=media_type, digest=digest, size=size)


# --- the protocol -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedManifest:
    media_type: str
    data: bytes
    digest: str


class RegistryClient:
    """One registry host. https (verified against the system roots plus certs.d) unless the host is insecure:
    then https without verification first and plain http when that fails, as dockerd does."""

    def __init__(self, host: str, *, settings: RegistrySettings, transport: httpx.BaseTransport | None = None) -> None:
        """`transport`: for tests (httpx.MockTransport as a registry)."""
        self.host = host
        files = find_tls_files(host, settings.certs_dirs)
        self._insecure = is_insecure(host, settings.insecure)
        self._http = httpx.Client(verify=tls_context(files, verify=not self._insecure), transport=transport,
                                  timeout=httpx.Timeout(settings.timeout), follow_redirects=True,
                                  headers={"User-Agent": f"pynode/{ENGINE_VERSION}"})
        self._base: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_manifest(self, repository: str, reference: str, *, shown: str) -> FetchedManifest:
        """GET /v2/<name>/manifests/<tag|digest>; the bytes as sent, their digest checked."""
        path = f"/v2/{repository}/manifests/{reference}"
        with self._stream(path, shown=shown, accept=ACCEPT) as response:
            data = self._read_limited(response, MANIFEST_LIMIT, what=f"manifest for {shown}")
            content_type = response.headers.get("content-type", "")
            announced = response.headers.get("docker-content-digest", "")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise BadContent(f"manifest for {shown}: content does not match its digest (got {digest})")
        if announced.startswith("sha256:") and announced != digest and not reference.startswith("sha256:"):
            raise BadContent(f"manifest for {shown}: content does not match Docker-Content-Digest {announced}")
        return FetchedManifest(media_type=media_type_of(data, content_type), data=data, digest=digest)

    def get_blob(self, repository: str, descriptor: Descriptor, *, shown: str, limit: int) -> bytes:
        """A small blob (a config) in memory, size and digest checked."""
        if descriptor.size > limit:
            raise BadContent(f"{shown}: blob {descriptor.digest} is too large ({descriptor.size} bytes)")
        with self.open_blob(repository, descriptor, shown=shown) as reader:
            data = reader.read(-1)
        if "sha256:" + hashlib.sha256(data).hexdigest() != descriptor.digest:
            raise BadContent(f"{shown}: blob {descriptor.digest} does not match its digest")
        return data

    @contextlib.contextmanager
    def open_blob(self, repository: str, descriptor: Descriptor, *, shown: str) -> Iterator[Readable]:
        """GET /v2/<name>/blobs/<digest> as a stream of exactly `descriptor.size` bytes (the reader raises
        BadContent on a short or long body); the digest is the reader's caller's to check."""
        with self._stream(f"/v2/{repository}/blobs/{descriptor.digest}", shown=shown) as response:
            yield _BlobReader(response, descriptor, shown=shown, host=self.host)

    # --- the wire ----------------------------------------------------------------------------------
    def _base_url(self) -> str:
        """Ping /v2/ once to choose the scheme; any HTTP answer will do (errors surface on real requests)."""
        if self._base is not None:
            return self._base
        schemes = ("https", "http") if self._insecure else ("https",)
        error: Exception | None = None
        for scheme in schemes:
            try:
                self._http.get(f"{scheme}://{self.host}/v2/").close()
            except httpx.HTTPError as exc:
                error = exc
                continue
            self._base = f"{scheme}://{self.host}"
            return self._base
        raise RegistryUnreachable(f"cannot reach registry {self.host}: {_cause(error)}")

    @contextlib.contextmanager
    def _stream(self, path: str, *, shown: str, accept: str | None = None) -> Iterator[httpx.Response]:
        url = self._base_url() + path
        headers = {"Accept": accept} if accept else {}
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response, shown=shown)
                yield response
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"cannot reach registry {self.host}: {_cause(exc)}") from None

    def _status_error(self, response: httpx.Response, *, shown: str) -> NodeError:
        detail = _registry_message(response)
        if response.status_code == 404:
            kind = "manifest" if "/manifests/" in response.url.path else "blob"
            return ManifestUnknown(f"{kind} for {shown} not found: {detail}")
        if response.status_code in (401, 403):
            return RegistryDenied(f"pull access denied for {shown}: {detail}")
        return BadContent(f"registry {self.host}: GET {response.url.path}: {response.status_code} {detail}")

    @staticmethod
    def _read_limited(response: httpx.Response, limit: int, *, what: str) -> bytes:
        data = b""
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > limit:
                raise BadContent(f"{what}: larger than {limit} bytes")
        return data


class _BlobReader:
    """A blob's body read as `Readable`, exactly `size` bytes; transport errors become one-line errors."""

    def __init__(self, response: httpx.Response, descriptor: Descriptor, *, shown: str, host: str) -> None:
        self._chunks = response.iter_bytes(_CHUNK)
        self._descriptor = descriptor
        self._shown = shown
        self._host = host
        self._pending = b""
        self.count = 0
        self._eof = False

    def read(self, n: int = -1, /) -> bytes:
        want = None if n < 0 else n
        while not self._eof and (want is None or len(self._pending) < want):
            chunk = self._next()
            if not chunk:
                self._finish()
                break
            self._pending += chunk
        if want is None:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:want], self._pending[want:]
        return data

    def _next(self) -> bytes:
        try:
            chunk = next(self._chunks, b"")
        except httpx.HTTPError as exc:
            raise BadContent(f"{self._shown}: blob {self._descriptor.digest} cut short ({self.count} of "
                             f"{self._descriptor.size} bytes): {_cause(exc)}") from None
        self.count += len(chunk)
        if self.count > self._descriptor.size:
            raise BadContent(f"{self._shown}: blob {self._descriptor.digest} is longer than its "
                             f"{self._descriptor.size} bytes")
        return chunk

    def _finish(self) -> None:
        self._eof = True
        if self.count != self._descriptor.size:
            raise BadContent(f"{self._shown}: blob {self._descriptor.digest} cut short ({self.count} of "
                             f"{self._descriptor.size} bytes)")


def _registry_message(response: httpx.Response) -> str:
    """The distribution spec's `{"errors": [{"code", "message"}]}`, or the body's first line."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
        return f"{code.lower().replace('_', ' ')}: {message}" if message else code.lower().replace("_", " ")
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason_phrase or str(response.status_code)


def _cause(exc: BaseException | None) -> str:
    """httpx hides the useful part (refused, TLS verify failed) in the exception's cause chain."""
    while exc is not None:
        text = str(exc).strip()
        if text:
            return text.splitlines()[0]
        exc = exc.__cause__ or exc.__context__
    return "no answer"


# --- the plan -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PullLayer:
    descriptor: Descriptor
    gzip: bool
    open: Callable[[], AbstractContextManager[Readable]]

    @property
    def label(self) -> str:
        """The short id Docker's progress shows: the blob digest's first 12 hex digits."""
        return hex_of(self.descriptor.digest)[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class PullPlan:
    """What the registry says the reference names, checked; layers are opened only when the store wants them.

    digest: what the reference resolved to (an index's digest when it was one), as the registry hashes it.
    manifests: the bytes pulled (index, then the platform's manifest), kept so that digest stays true.
    config: None when the store already has `image_id` (nothing is downloaded then).
    """

    reference: Reference
    digest: str
    manifests: tuple[bytes, ...]
    image_id: str
    config: bytes | None
    layers: tuple[PullLayer, ...]

    @property
    def shown(self) -> str:
        return display(self.reference)


def plan_pull(client: RegistryClient, ref: Reference, *, platform: Platform,
              has_image: Callable[[str], bool]) -> PullPlan:
    shown = display(ref)
    top = client.get_manifest(ref.path, ref.digest or ref.tag or DEFAULT_TAG, shown=shown)
    pulled = [top.data]
    manifest_bytes, media_type = top.data, top.media_type
    for _ in range(2):  # an index of indexes at most
        if media_type not in INDEX_TYPES:
            break
        entry = select_platform(parse_index(manifest_bytes, what=shown), platform, what=shown)
        fetched = client.get_manifest(ref.path, entry.digest, shown=shown)
        manifest_bytes, media_type = fetched.data, fetched.media_type
        pulled.append(fetched.data)
    if media_type not in MANIFEST_TYPES:
        raise BadContent(f"manifest for {shown}: unsupported media type {media_type!r}")
    manifest = parse_manifest(manifest_bytes, what=shown)
    layers = tuple(_pull_layer(client, ref.path, layer, shown=shown) for layer in manifest.layers)
    image_id = manifest.config.digest
    config = None if has_image(image_id) else client.get_blob(ref.path, manifest.config, shown=shown,
                                                               limit=CONFIG_LIMIT)
    return PullPlan(reference=ref, digest=top.digest, manifests=tuple(pulled), image_id=image_id, config=config,
                    layers=layers)


def _pull_layer(client: RegistryClient, repository: str, descriptor: Descriptor, *, shown: str) -> PullLayer:
    gzip = layer_is_gzip(descriptor, what=shown)

    @contextlib.contextmanager
    def opened() -> Iterator[Readable]:
        with client.open_blob(repository, descriptor, shown=shown) as blob:
            yield _checked_compression(blob, gzip=gzip, what=f"{shown}: layer {descriptor.digest}")
    return PullLayer(descriptor=descriptor, gzip=gzip, open=opened)


def _checked_compression(blob: Readable, *, gzip: bool, what: str) -> Readable:
    """Layers are gzip or plain by their media type; content that says otherwise is refused."""
    peek = PeekReader(blob)
    head = peek.peek(2)
    if head and (head == GZIP_MAGIC) != gzip:
        raise BadContent(f"{what}: content is {'plain' if gzip else 'gzip'} but the media type says "
                         f"{'gzip' if gzip else 'plain'}")
    return peek


def pull_image(store: ImageStore, ref: Reference, *, settings: RegistrySettings,
               platform: Platform) -> Generator[StoreEvent, None, None]:
    """The whole pull: the registry is asked before the first event (so early failures stay HTTP errors)."""
    with RegistryClient(ref.domain, settings=settings) as client:
        plan = plan_pull(client, ref, platform=platform, has_image=store.has_image)
        yield from store.pull(plan)

