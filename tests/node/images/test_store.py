"""The interface containers and the builder use, on an in-process store (no daemon)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from node.errors import Conflict, InvalidArgument, NotFound
from node.images.store import ImageStore
from tests.node.images.archives import d, docker_archive, f, layer_tar, sha

pytestmark = pytest.mark.privileged


def _load(store: ImageStore, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.tar"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        list(store.load(fh))


def test_resolve_names_ids_and_prefixes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    _load(store, tmp_path, docker_archive([layer_tar([f("a", b"1")])], tags=["busybox:latest"]))
    image = store.resolve("busybox")
    assert store.resolve("docker.io/library/busybox:latest") == image
    assert store.resolve(image.id) == image
    assert store.resolve(image.id[7:19]) == image
    assert image.repo_tags == ("busybox:latest",)
    assert image.config["config"]["Cmd"] == ["sh"]
    assert len(image.diff_ids) == len(image.chain_ids) == 1
    with pytest.raises(NotFound, match="No such image: nope"):
        store.resolve("nope")


def test_ambiguous_prefix_is_an_error(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    for i in range(40):
        _load(store, tmp_path, docker_archive([layer_tar([f("a", str(i).encode())])]))
    ids = [image.id[7:] for image in store.images()]
    first = {i[0] for i in ids}
    prefix = next(c for c in first if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        store.resolve(prefix)


def test_rw_layer_mount_shows_the_image_and_takes_writes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    base = layer_tar([d("etc"), f("etc/hostname", b"base"), f("old", b"x")])
    top = layer_tar([f(".wh.old"), f("etc/new", b"new")])
    _load(store, tmp_path, docker_archive([base, top], tags=["two:1"]))
    image = store.resolve("two:1")
    driver = store.driver
    assert [p.parent.name for p in driver.layer_diff_dirs(image)] == [c[7:] for c in image.chain_ids]
    driver.create_rw_layer("c1", image)
    try:
        merged = driver.mount("c1")
        assert driver.mount("c1") == merged  # idempotent
        assert (merged / "etc/hostname").read_text() == "base"
        assert (merged / "etc/new").read_text() == "new"
        assert not (merged / "old").exists()
        (merged / "written").write_bytes(b"12345")
        assert driver.rw_layer_size("c1") == 5
        lower = (driver.layer_dir("c1") / "lower").read_text()
        assert lower.count("l/") == 2
    finally:
        driver.unmount("c1")
        driver.unmount("c1")
        driver.remove_rw_layer("c1")
    assert not driver.layer_dir("c1").exists()
    assert not driver.mounts()


def test_builder_path_layer_from_tar_then_commit(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    base = store.create_layer_from_tar(io.BytesIO(layer_tar([f("a", b"1")])), None)
    top = store.create_layer_from_tar(io.BytesIO(layer_tar([f("b", b"2")])), base.chain_id)
    assert top.parent == base.chain_id
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
              "rootfs": {"type": "layers", "diff_ids": [base.diff_id, top.diff_id]}}
    image = store.commit(config, tags=["built:1"])
    assert image.chain_ids == (base.chain_id, top.chain_id)
    assert store.resolve("built:1").id == image.id
    # a restarted store sees the same image, layers and refcounts
    again = ImageStore(tmp_path / "root")
    assert again.resolve("built:1").id == image.id
    refs = json.loads((tmp_path / "root/image/layerdb/refcounts.json").read_text())
    assert refs[top.chain_id] == [image.id]


def test_whiteout_dirs_are_real_overlay_whiteouts(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    _load(store, tmp_path, docker_archive([layer_tar([f("x", b"1")]), layer_tar([f(".wh.x")])]))
    image = store.images()[0]
    st = os.lstat(store.layer_diff_dirs(image)[1] / "x")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_images_in_use_are_kept_unless_forced(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    _load(store, tmp_path, docker_archive([layer_tar([f("a", b"1")])], tags=["used:1"]))
    image = store.resolve("used:1")
    store.set_in_use_checker(lambda image_id: ["c0ffee" * 10] if image_id == image.id else [])
    with pytest.raises(Conflict, match="being used by container c0ffeec0ffee"):
        store.remove(image.id)
    assert store.prune(all_images=True)["ImagesDeleted"] is None
    assert store.remove(image.id, force=True) == [{"Untagged": "used:1"}]
    assert store.resolve(image.id).repo_tags == ()  # kept, dangling, while the container exists
    store.set_in_use_checker(lambda _image_id: [])
    deleted = store.prune()["ImagesDeleted"]
    assert {"Deleted": image.id} in deleted


def test_gzipped_archive_with_legacy_symlinked_layers(tmp_path: Path) -> None:
    import gzip
    import tarfile

    layer = layer_tar([f("same", b"s")])
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {
        "type": "layers", "diff_ids": [sha(layer), sha(layer)]}}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("a/layer.tar", layer), ("c.json", config), ("manifest.json", json.dumps(
                [{"Config": "c.json", "RepoTags": ["docker.io/library/twice:1"],
                  "Layers": ["a/layer.tar", "b/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("b/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../a/layer.tar"
        tar.addfile(link)
    store = ImageStore(tmp_path / "root")
    _load(store, tmp_path, gzip.compress(buf.getvalue()))
    image = store.resolve("twice:1")
    assert image.diff_ids == (sha(layer), sha(layer)) and len(set(image.chain_ids)) == 2
