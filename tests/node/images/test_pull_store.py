"""Pulling into an in-process store from a registry in memory (httpx.MockTransport): which blobs move, what
the store records (digest references, manifests as pulled), and that every failure leaves it as it was."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from node.errors import InvalidArgument, NodeError, NotFound
from node.images.model import go_arch
from node.images.pull import Platform, RegistryClient, RegistrySettings, plan_pull, pull_reference
from node.images.store import ImageStore, LayerStatus, StatusLine, StoreEvent
from tests.node.images.archives import f, layer_tar, listing, sha
from tests.node.images.registry_fake import DOCKER_MANIFEST, OCI_MANIFEST, FakeRegistry

pytestmark = pytest.mark.privileged

HOST = "reg.test:5000"
BASE = layer_tar([f("etc/hostname", b"base"), f("bin/sh", b"#!" * 3000)])
TOP = layer_tar([f("app", b"application" * 500)])


def _pull(store: ImageStore, registry: FakeRegistry, ref: str, *, platform: str = "") -> list[StoreEvent]:
    parsed = pull_reference(ref)
    with RegistryClient(parsed.domain, settings=RegistrySettings(), transport=registry.transport()) as client:
        plan = plan_pull(client, parsed, platform=Platform.parse(platform), has_image=store.has_image)
        return list(store.pull(plan))


def _statuses(events: list[StoreEvent]) -> list[str]:
    return [f"{e.layer}: {e.status}" if isinstance(e, LayerStatus) else e.message
            for e in events if isinstance(e, LayerStatus | StatusLine)]


def test_a_pull_registers_the_image_its_tag_and_digest_and_keeps_the_manifest_as_pulled(tmp_path: Path) -> None:
    registry = FakeRegistry()
    digest, manifest = registry.add_image("app", "1", [BASE, TOP])
    store = ImageStore(tmp_path / "root")
    statuses = _statuses(_pull(store, registry, f"{HOST}/app:1"))
    base_id, top_id = sha(gzip.compress(BASE, mtime=0))[7:19], sha(gzip.compress(TOP, mtime=0))[7:19]
    assert statuses[:3] == ["Pulling from app", f"{base_id}: Pulling fs layer", f"{top_id}: Pulling fs layer"]
    assert sorted(statuses[3:5]) == sorted([f"{base_id}: Pull complete", f"{top_id}: Pull complete"])
    assert statuses[5:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {HOST}/app:1"]
    image = store.resolve(f"{HOST}/app:1")
    assert image.diff_ids == (sha(BASE), sha(TOP))
    assert image.repo_tags == (f"{HOST}/app:1",) and image.repo_digests == (f"{HOST}/app@{digest}",)
    assert (tmp_path / "root/image/blobs/sha256" / digest[7:]).read_bytes() == manifest
    for ref in (f"{HOST}/app@{digest}", f"{HOST}/app:1@{digest}", f"{HOST}/app:other@{digest}"):
        assert store.resolve(ref).id == image.id  # by RepoDigest; a tag beside a digest is ignored, as Docker does
    with pytest.raises(NotFound):
        store.resolve(f"app@{digest}")  # the digest belongs to another repository's name
    again = ImageStore(tmp_path / "root")  # what a restarted daemon sees
    assert again.resolve(f"{HOST}/app@{digest}").repo_digests == image.repo_digests
    assert again.resolve(image.id).pulled_manifests == (digest,)


def test_layers_the_store_has_in_the_same_position_are_not_downloaded(tmp_path: Path) -> None:
    registry = FakeRegistry()
    registry.add_image("base", "1", [BASE])
    registry.add_image("app", "1", [BASE, TOP])
    registry.add_image("top-alone", "1", [TOP])  # TOP's content, but as a base layer: another chain
    store = ImageStore(tmp_path / "root")
    _pull(store, registry, f"{HOST}/base:1")
    registry.requests.clear()
    events = _pull(store, registry, f"{HOST}/app:1")
    base_id = sha(gzip.compress(BASE, mtime=0))[7:19]
    assert f"{base_id}: Already exists" in _statuses(events)
    fetched = {r.rpartition("/")[2] for r in registry.blob_gets()}
    assert sha(gzip.compress(BASE, mtime=0)) not in fetched and sha(gzip.compress(TOP, mtime=0)) in fetched
    registry.requests.clear()
    _pull(store, registry, f"{HOST}/top-alone:1")
    assert sha(gzip.compress(TOP, mtime=0)) in {r.rpartition("/")[2] for r in registry.blob_gets()}
    registry.requests.clear()
    events = _pull(store, registry, f"{HOST}/app:1")
    assert _statuses(events)[-1] == f"Status: Image is up to date for {HOST}/app:1"
    assert registry.blob_gets() == []  # the image is there: neither config nor layers are fetched


def test_concurrent_pulls_download_a_shared_layer_once(tmp_path: Path) -> None:
    registry = FakeRegistry()
    registry.add_image("one", "1", [BASE, TOP])
    registry.add_image("two", "1", [BASE, layer_tar([f("other", b"2" * 4000)])])
    base_blob = sha(gzip.compress(BASE, mtime=0))
    registry.delay[base_blob] = 0.5  # both pulls are mid-way when the first one gets the shared layer
    store = ImageStore(tmp_path / "root")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda name: _pull(store, registry, f"{HOST}/{name}:1"), ["one", "two"]))
    assert all(_statuses(events)[-1].startswith("Status: Downloaded newer image") for events in results)
    assert [r for r in registry.blob_gets() if r.endswith(base_blob)] == [f"GET /v2/one/blobs/{base_blob}"] or \
        [r for r in registry.blob_gets() if r.endswith(base_blob)] == [f"GET /v2/two/blobs/{base_blob}"]
    assert store.resolve(f"{HOST}/one:1").chain_ids[0] == store.resolve(f"{HOST}/two:1").chain_ids[0]


def test_plain_layers_docker_manifests_and_an_index(tmp_path: Path) -> None:
    registry = FakeRegistry()
    plain_digest, _ = registry.add_image("plain", "1", [BASE], gzip_layers=False, media_type=DOCKER_MANIFEST)
    ours, _ = registry.add_image("multi", "x-ours", [BASE, TOP])
    theirs, _ = registry.add_image("multi", "x-theirs", [TOP], cmd=("other",))
    other_arch = "arm64" if go_arch() != "arm64" else "amd64"
    index = registry.add_index("multi", "1", [("linux", other_arch, theirs), ("linux", go_arch(), ours)])
    store = ImageStore(tmp_path / "root")
    _pull(store, registry, f"{HOST}/plain:1")
    assert store.resolve(f"{HOST}/plain@{plain_digest}").diff_ids == (sha(BASE),)
    events = _pull(store, registry, f"{HOST}/multi:1")
    assert f"Digest: {index}" in _statuses(events)  # the digest the tag names: the index's
    image = store.resolve(f"{HOST}/multi@{index}")
    assert image.diff_ids == (sha(BASE), sha(TOP)) and set(image.pulled_manifests) == {index, ours}
    assert store.resolve(f"{HOST}/multi@{ours}").id == image.id  # known by its platform manifest too
    with pytest.raises(NodeError, match="no matching manifest for linux/s390x"):
        _pull(store, registry, f"{HOST}/multi:1", platform="linux/s390x")


def _broken(registry: FakeRegistry) -> dict[str, str]:
    """Images whose content does not check out, beside one that does: name -> the error expected."""
    registry.add_image("keep", "1", [BASE])
    layers = {name: layer_tar([f(name, name.encode() * 5000)]) for name in
              ("tampered", "tampered-plain", "short", "mislabelled", "badconfig", "wrongsize")}
    for name, layer in layers.items():
        registry.add_image(name, "1", [BASE, layer], gzip_layers=name not in ("tampered-plain", "mislabelled"))
    tampered = sha(gzip.compress(layers["tampered"], mtime=0))
    registry.blobs[tampered] = gzip.compress(layers["tampered"], mtime=1)  # same size and files, another blob
    plain = sha(layers["tampered-plain"])
    cut = registry.blobs[plain].rfind(b"tampered-plain")  # in the file's content, not its header
    registry.blobs[plain] = registry.blobs[plain][:cut] + b"TAMPERED" + registry.blobs[plain][cut + 8:]
    registry.short = {sha(gzip.compress(layers["short"], mtime=0)): 100}  # the connection is cut early
    _relabel(registry, "mislabelled", lambda m: m["layers"][1].update(
        mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
    _relabel(registry, "badconfig", lambda m: m["config"].update(size=m["config"]["size"] + 1))
    _relabel(registry, "wrongsize", lambda m: m["layers"][1].update(size=m["layers"][1]["size"] - 10))
    return {"tampered": "blob does not match its digest", "tampered-plain": "content does not match its digest",
            "short": "cut short (100 of", "mislabelled": "content is plain but the media type says gzip",
            "badconfig": "cut short", "wrongsize": "is longer than its",
            "missing": f"manifest for {HOST}/missing:1 not found: manifest unknown: manifest unknown"}


def _relabel(registry: FakeRegistry, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads(registry.manifests[(name, "1")][1])
    change(manifest)
    registry.put_manifest(name, "1", OCI_MANIFEST, json.dumps(manifest).encode())


def test_failed_pulls_leave_the_store_exactly_as_before(tmp_path: Path) -> None:
    registry = FakeRegistry()
    expected = _broken(registry)
    store = ImageStore(tmp_path / "root")
    _pull(store, registry, f"{HOST}/keep:1")
    before = listing(tmp_path / "root")
    for name, message in expected.items():
        with pytest.raises(NodeError) as caught:
            _pull(store, registry, f"{HOST}/{name}:1")
        assert message in str(caught.value) and "\n" not in str(caught.value), (name, str(caught.value))
        assert listing(tmp_path / "root") == before, name
        assert [i.repo_tags for i in store.images()] == [(f"{HOST}/keep:1",)], name


def test_digest_references_as_names(tmp_path: Path) -> None:
    registry = FakeRegistry()
    digest, _ = registry.add_image("app", "1", [BASE])
    store = ImageStore(tmp_path / "root")
    _pull(store, registry, f"{HOST}/app@{digest}")  # by digest: a digest reference, no tag
    image = store.resolve(f"{HOST}/app@{digest}")
    assert image.repo_tags == () and image.repo_digests == (f"{HOST}/app@{digest}",)
    assert [i.id for i in store.images()] == [image.id]
    store.tag(f"{HOST}/app@{digest}", "app:1")
    store.tag(f"{HOST}/app@{digest}", f"app@{digest}")  # a digest the image is known by may name it
    with pytest.raises(InvalidArgument, match="not known by that digest"):
        store.tag("app:1", "app@sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument, match="refusing to create a tag with a digest reference"):
        store.tag("app:1", f"app:2@{digest}")
    assert store.remove(f"{HOST}/app@{digest}") == [{"Untagged": f"{HOST}/app@{digest}"}]
    assert store.resolve("app:1").repo_digests == (f"app@{digest}",)
    own = store.resolve("app:1").manifest_digest
    assert store.resolve(f"app:1@{own}").id == image.id  # the store's own manifest digest resolves too
    store.tag("app:1", f"{HOST}/app:latest")
    store.tag("app:1", f"{HOST}/app@{digest}")
    # removing a repository's last tag removes that repository's digest references (Docker's rule)
    assert store.remove(f"{HOST}/app:latest") == [{"Untagged": f"{HOST}/app:latest"},
                                                  {"Untagged": f"{HOST}/app@{digest}"}]
    out = store.remove("app:1")
    assert out[:2] == [{"Untagged": "app:1"}, {"Untagged": f"app@{digest}"}] and {"Deleted": image.id} in out
    assert store.images() == [] and not any((tmp_path / "root/image/blobs/sha256").iterdir())
