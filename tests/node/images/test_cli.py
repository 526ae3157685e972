"""The issue's acceptance points through `pynode` against a real daemon."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from node.images.model import chain_ids_of
from node.images.storage.overlay2 import Overlay2Driver
from tests.node.images.archives import (
    d,
    docker_archive,
    f,
    layer_tar,
    listing,
    oci_archive,
    overlay_layer_dirs,
    saved_layers,
    sha,
)
from tests.support.engine import PYNODE, EngineProcess

pytestmark = pytest.mark.privileged


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _image_id(engine: EngineProcess, ref: str) -> str:
    return engine.cli("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


# (1) ----------------------------------------------------------------------------------------------
def test_bootstrap_save_rmi_load_round_trip(engine: EngineProcess, tmp_path: Path) -> None:
    engine.cli("image", "bootstrap", "busybox")
    first_id = _image_id(engine, "busybox")
    engine.cli("image", "bootstrap", "busybox:again")
    assert _image_id(engine, "busybox:again") == first_id  # deterministic
    engine.cli("rmi", "busybox:again")
    saved = tmp_path / "bb.tar"
    engine.cli("save", "-o", str(saved), "busybox")
    out = engine.cli("rmi", "busybox").stdout
    assert f"Untagged: busybox:latest\nDeleted: {first_id}\n" in out
    assert engine.cli("images", "-q").stdout.strip() == ""
    loaded = engine.cli("load", "-i", str(saved)).stdout
    assert loaded.strip().endswith("Loaded image: busybox:latest")
    assert _image_id(engine, "busybox") == first_id
    again = tmp_path / "bb2.tar"
    engine.cli("save", "-o", str(again), "busybox")
    assert saved_layers(again) == saved_layers(saved)
    assert again.read_bytes() == saved.read_bytes()
    for transport in ("docker-archive", "oci-archive"):
        out = subprocess.run(["skopeo", "inspect", f"{transport}:{saved}"], capture_output=True, text=True,
                             check=True).stdout
        assert json.loads(out)["Layers"] == list(saved_layers(saved))
    with tarfile.open(saved) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "repositories", "index.json", "oci-layout"} <= names


def test_bootstrapped_busybox_has_applets_users_and_dirs(engine: EngineProcess) -> None:
    engine.cli("image", "bootstrap", "busybox")
    inspect = json.loads(engine.cli("image", "inspect", "busybox").stdout)[0]
    assert inspect["Config"]["Cmd"] == ["sh"]
    assert inspect["GraphDriver"]["Name"] == "overlay2"
    diff = Path(inspect["GraphDriver"]["Data"]["UpperDir"])
    assert (diff / "bin/sh").stat().st_ino == (diff / "bin/busybox").stat().st_ino
    assert "nobody" in (diff / "etc/passwd").read_text() and "root" in (diff / "etc/group").read_text()
    assert stat.S_IMODE((diff / "tmp").stat().st_mode) == 0o1777
    assert (diff / "root").is_dir() and (diff / "var/www").is_dir()


# (2) ----------------------------------------------------------------------------------------------
def test_a_shared_layer_exists_once_and_lives_until_its_last_image(engine: EngineProcess, tmp_path: Path) -> None:
    base = layer_tar([d("etc"), f("etc/os-release", b"ID=test\n"), f("big", os.urandom(1 << 20))])
    engine.cli("import", str(_write(tmp_path, "rootfs.tar", base)), "base:1")
    top = layer_tar([f("app", b"#!/bin/sh\n", mode=0o755)])
    engine.cli("load", "-i", str(_write(tmp_path, "app.tar", docker_archive([base, top], tags=["app:1"]))))
    base_dir = sha(base)[7:]
    dirs = overlay_layer_dirs(engine.data_root)
    assert dirs == sorted([base_dir, chain_ids_of([sha(base), sha(top)])[1][7:]])
    engine.cli("rmi", "base:1")
    assert base_dir in overlay_layer_dirs(engine.data_root)
    assert engine.cli("image", "inspect", "--format", "{{len .RootFS.Layers}}", "app:1").stdout.strip() == "2"
    engine.cli("rmi", "app:1")
    assert overlay_layer_dirs(engine.data_root) == []
    assert list((engine.data_root / "overlay2/l").iterdir()) == []


# (3) ----------------------------------------------------------------------------------------------
def test_whiteouts_and_opaque_dirs_load_as_overlay_sees_them(engine: EngineProcess, tmp_path: Path) -> None:
    base = layer_tar([d("etc"), f("etc/keep", b"k"), f("etc/gone", b"g"), d("cache"), f("cache/old", b"o")])
    top = layer_tar([f("etc/.wh.gone"), d("cache"), f("cache/.wh..wh..opq"), f("cache/fresh", b"f")])
    archive = _write(tmp_path, "wh.tar", docker_archive([base, top], tags=["wh:1"], gzip_layers=True))
    engine.cli("load", "-i", str(archive))
    chains = chain_ids_of([sha(base), sha(top)])
    driver = Overlay2Driver(engine.data_root / "overlay2")
    top_diff = driver.diff_dir(chains[1][7:])
    st = os.lstat(top_diff / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert os.getxattr(top_diff / "cache", "trusted.overlay.opaque") == b"y"
    driver.create_layer_on("wh-check", [chains[1][7:], chains[0][7:]])
    try:
        merged = driver.mount("wh-check")
        assert sorted(os.listdir(merged / "etc")) == ["keep"]
        assert sorted(os.listdir(merged / "cache")) == ["fresh"]
    finally:
        driver.remove_rw_layer("wh-check")
    saved = tmp_path / "saved.tar"
    engine.cli("save", "-o", str(saved), "wh:1")
    assert list(saved_layers(saved)) == [sha(base), sha(top)]


# (4) ----------------------------------------------------------------------------------------------
def _bad_archives() -> dict[str, bytes]:
    good = layer_tar([f("fresh", b"new layer content")])
    evil_link = layer_tar([f("lib", type=tarfile.SYMTYPE, linkname="/etc"), f("lib/evil", b"x")])
    mismatched_config = docker_archive([good], config=docker_config_with_wrong_digest(good))
    whole = docker_archive([good, layer_tar([f("b", b"2" * 4096)])], tags=["bad:1"])
    return {
        "truncated": whole[: len(whole) // 2],
        "digest mismatch": mismatched_config,
        "missing file": docker_archive([good], skip=["layer0/layer.tar"]),
        "dotdot": docker_archive([good, layer_tar([f("../../escape", b"x")])], tags=["bad:1"]),
        "absolute": docker_archive([good, layer_tar([f("/etc/escape", b"x")])], tags=["bad:1"]),
        "through symlink": docker_archive([good, evil_link], tags=["bad:1"]),
        "device": docker_archive([good, layer_tar([f("mem", type=tarfile.CHRTYPE, devmajor=1, devminor=1)])]),
        "not an archive": b"hello world" * 100,
        "oci truncated layer": oci_archive([good, layer_tar([f("c", b"c" * 9000)])], name="bad:1")[:-4000],
    }


def docker_config_with_wrong_digest(layer: bytes) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": [sha(layer + b"tampered")]}}).encode()


def test_bad_archives_leave_the_store_exactly_as_before(engine: EngineProcess, tmp_path: Path) -> None:
    engine.cli("import", str(_write(tmp_path, "root.tar", layer_tar([f("x", b"1")]))), "keep:1")
    before = listing(engine.data_root)
    for name, data in _bad_archives().items():
        path = _write(tmp_path, "bad.tar", data)
        result = engine.cli("load", "-i", str(path), check=False)
        assert result.returncode != 0, name
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error"), (name, result.stderr)
        assert listing(engine.data_root) == before, name
    assert engine.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == ["keep:1"]


def test_bad_import_leaves_the_store_exactly_as_before(engine: EngineProcess, tmp_path: Path) -> None:
    before = listing(engine.data_root)
    data = layer_tar([f("ok", b"1" * 3000), f("../../x", b"2")])
    for payload in (data, data[:1500]):
        result = engine.cli("import", str(_write(tmp_path, "bad.tar", payload)), "bad:1", check=False)
        assert result.returncode != 0 and result.stderr.count("\n") == 1
        assert listing(engine.data_root) == before


# (5) ----------------------------------------------------------------------------------------------
def test_concurrent_loads_sharing_a_layer(engine: EngineProcess, tmp_path: Path) -> None:
    base = layer_tar([f(f"f{i}", os.urandom(20_000)) for i in range(200)])
    paths = []
    for n in range(2):
        top = layer_tar([f(f"top{n}", b"x" * 1000)])
        paths.append(_write(tmp_path, f"img{n}.tar", docker_archive([base, top], tags=[f"img{n}:1"])))
    procs = [subprocess.Popen([PYNODE, "load", "-q", "-i", str(p)], env=engine.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in paths]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(overlay_layer_dirs(engine.data_root)) == 3
    for n in range(2):
        layers = engine.cli("image", "inspect", "--format", "{{json .RootFS.Layers}}", f"img{n}:1").stdout
        assert json.loads(layers)[0] == sha(base)
    engine.cli("rmi", "img0:1")
    assert sha(base)[7:] in overlay_layer_dirs(engine.data_root)
    engine.cli("rmi", "img1:1")
    assert overlay_layer_dirs(engine.data_root) == []


# (6) ----------------------------------------------------------------------------------------------
def test_links_modes_owners_xattrs_and_mtimes_round_trip(engine: EngineProcess, tmp_path: Path) -> None:
    layer = layer_tar([
        d("usr", mtime=1_600_000_000), d("usr/bin", mtime=1_600_000_100),
        f("usr/bin/tool", b"\x7fELF" + os.urandom(5000), mode=0o4755, uid=1000, gid=50, mtime=1_600_000_200,
          xattrs={"user.origin": "test", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00" + "\0" * 12}),
        f("usr/bin/alias", type=tarfile.LNKTYPE, linkname="usr/bin/tool"),
        f("usr/bin/sh", type=tarfile.SYMTYPE, linkname="/bin/busybox", mtime=1_600_000_300),
        f("usr/private", b"secret", mode=0o600, uid=65534, gid=65534, mtime=1_600_000_400),
        d("tmp", mode=0o1777), f("pipe", type=tarfile.FIFOTYPE, mode=0o620),
    ])
    archive = _write(tmp_path, "meta.tar", docker_archive([layer], tags=["meta:1"]))
    engine.cli("load", "-i", str(archive))
    diff = Path(json.loads(engine.cli("image", "inspect", "meta:1").stdout)[0]["GraphDriver"]["Data"]["UpperDir"])
    tool = os.lstat(diff / "usr/bin/tool")
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_gid, int(tool.st_mtime)) == (0o4755, 1000, 50,
                                                                                           1_600_000_200)
    assert tool.st_nlink == 2 and os.lstat(diff / "usr/bin/alias").st_ino == tool.st_ino
    assert os.getxattr(diff / "usr/bin/tool", "user.origin") == b"test"
    assert os.readlink(diff / "usr/bin/sh") == "/bin/busybox"
    assert int(os.lstat(diff / "usr/bin").st_mtime) == 1_600_000_100
    assert int(os.lstat(diff / "usr").st_mtime) == 1_600_000_000
    assert stat.S_IMODE(os.lstat(diff / "tmp").st_mode) == 0o1777
    saved = tmp_path / "saved.tar"
    engine.cli("save", "-o", str(saved), "meta:1")
    assert list(saved_layers(saved).values()) == [layer]


# (7) ----------------------------------------------------------------------------------------------
def test_images_inspect_history_tag_rmi_prune_df(engine: EngineProcess, tmp_path: Path) -> None:
    layers = [layer_tar([f("a", b"1" * 2000)]), layer_tar([f("b", b"2")])]
    archive = docker_archive(layers, tags=["demo:1"])
    engine.cli("load", "-i", str(_write(tmp_path, "demo.tar", archive)))
    image_id = _image_id(engine, "demo:1")
    lines = engine.cli("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["demo", "1", image_id[7:19]]
    assert engine.cli("images", "-q").stdout.split() == [image_id[7:19]]
    row = json.loads(engine.cli("images", "--format", "json").stdout)
    assert row["Repository"] == "demo" and row["Size"] == "2kB" and "ago" in row["CreatedSince"]
    assert _image_id(engine, image_id[7:15]) == image_id

    history = engine.cli("history", "demo:1").stdout.splitlines()
    assert history[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert history[1].split()[0] == image_id[7:19] and history[2].split()[0] == "<missing>"
    assert "layer 1" in history[1] and "layer 0" in history[2]

    engine.cli("tag", "demo:1", "other/name:v2")
    tagged = engine.cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert sorted(tagged) == sorted([f"demo:1 {image_id[7:19]}", f"other/name:v2 {image_id[7:19]}"])
    refused = engine.cli("rmi", image_id[7:19], check=False)
    assert refused.returncode == 1 and "referenced in multiple repositories" in refused.stderr
    assert engine.cli("rmi", "other/name:v2").stdout == "Untagged: other/name:v2\n"
    filtered = engine.cli("images", "--filter", "reference=demo", "-q").stdout.split()
    assert filtered == [image_id[7:19]]

    df = engine.cli("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "0"]
    verbose = engine.cli("system", "df", "-v").stdout
    assert "SHARED SIZE" in verbose and "UNIQUE SIZE" in verbose

    assert engine.cli("images", "--filter", "dangling=true", "-q").stdout.split() == []
    engine.cli("load", "-i", str(_write(tmp_path, "again.tar", docker_archive(
        [layer_tar([f("c", b"3")])], tags=["demo:1"]))))  # moves the tag: the first image is dangling
    dangling = engine.cli("images", "--filter", "dangling=true", "--format", "{{.Repository}} {{.ID}}").stdout
    assert dangling.split() == ["<none>", image_id[7:19]]
    pruned = engine.cli("image", "prune", "-f").stdout
    assert f"deleted: {image_id}" in pruned and "Total reclaimed space: " in pruned
    assert engine.cli("image", "ls", "-q", "-a").stdout.split() != []
    pruned_all = engine.cli("image", "prune", "-a", "-f").stdout
    assert "untagged: demo:1" in pruned_all
    assert engine.cli("images", "-q").stdout == ""
    missing = engine.cli("image", "inspect", "nope", check=False)
    assert missing.returncode == 1 and "No such image: nope" in missing.stderr


def test_oci_layout_archives_load_with_their_ref_name(engine: EngineProcess, tmp_path: Path) -> None:
    layers = [layer_tar([f("one", b"1")]), layer_tar([f("two", b"2")])]
    engine.cli("load", "-i", str(_write(tmp_path, "oci.tar", oci_archive(layers, name="oci/thing:v1"))))
    out = engine.cli("image", "inspect", "--format", "{{json .RootFS.Layers}}", "oci/thing:v1").stdout
    assert json.loads(out) == [sha(layer) for layer in layers]
    loaded = engine.cli("load", "-i", str(_write(tmp_path, "anon.tar", oci_archive(
        [layer_tar([f("x", b"x")])], gzip_layers=False)))).stdout
    assert "Loaded image ID: sha256:" in loaded


def test_import_makes_a_one_layer_image(engine: EngineProcess, tmp_path: Path) -> None:
    rootfs = layer_tar([d("bin"), f("bin/hello", b"hi", mode=0o755)])
    out = engine.cli("import", "-m", "from a test", str(_write(tmp_path, "r.tar", rootfs)), "imported:v1").stdout
    image_id = out.strip().splitlines()[-1]
    assert image_id.startswith("sha256:") and _image_id(engine, "imported:v1") == image_id
    inspect = json.loads(engine.cli("image", "inspect", "imported:v1").stdout)[0]
    assert inspect["RootFS"] == {"Type": "layers", "Layers": [sha(rootfs)]}
    assert inspect["Comment"] == "from a test"
    info = engine.cli("info", "--format", "{{.Images}}").stdout.strip()
    assert info == "1"


@pytest.mark.slow
def test_bootstrap_debian(engine: EngineProcess) -> None:
    result = engine.cli("image", "bootstrap", "debian:bookworm", timeout=600)
    assert "Loaded image: debian:bookworm" in result.stdout
    inspect = json.loads(engine.cli("image", "inspect", "debian:bookworm").stdout)[0]
    assert inspect["Config"]["Cmd"] == ["bash"]
    diff = Path(inspect["GraphDriver"]["Data"]["UpperDir"])
    assert (diff / "usr/bin/apt-get").exists()
    assert not (diff / "etc/apt/sources.list.d/debian.sources").exists() or \
        "security.debian.org" not in (diff / "etc/apt/sources.list.d/debian.sources").read_text()
