"""The pure parts of pulling: references, registry-host and insecure rules, certs.d lookup, manifests and
indexes, and the rows `images --digests` makes. No daemon, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli.images import image_names
from node.config import build_config
from node.errors import InvalidArgument
from node.images.pull import (
    BadContent,
    Descriptor,
    ManifestUnknown,
    Platform,
    find_tls_files,
    is_insecure,
    layer_is_gzip,
    media_type_of,
    parse_index,
    parse_manifest,
    pull_reference,
    select_platform,
    settings_for,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


# --- references -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("from_image", "tag", "name", "expected_tag", "digest"), [
    ("10.0.0.2:2377/web", None, "10.0.0.2:2377/web", "latest", None),
    ("10.0.0.2:2377/web:1", None, "10.0.0.2:2377/web", "1", None),
    ("10.0.0.2:2377/web:1", "2", "10.0.0.2:2377/web", "2", None),          # the tag parameter wins
    ("10.0.0.2:2377/web", DIGEST, "10.0.0.2:2377/web", None, DIGEST),      # `tag` may be a digest
    (f"10.0.0.2:2377/web:1@{DIGEST}", None, "10.0.0.2:2377/web", None, DIGEST),  # a digest decides
    ("localhost/app", None, "localhost/app", "latest", None),
    ("reg.example.com/team/app", None, "reg.example.com/team/app", "latest", None),
    ("localhost:5000/a/b/c", "v1", "localhost:5000/a/b/c", "v1", None),
])
def test_pull_references(from_image: str, tag: str | None, name: str, expected_tag: str | None,
                         digest: str | None) -> None:
    ref = pull_reference(from_image, tag)
    assert (ref.name, ref.tag, ref.digest) == (name, expected_tag, digest)


@pytest.mark.parametrize("name", ["busybox", "library/busybox:1", "me/app", "docker.io/library/busybox",
                                  "index.docker.io/me/app"])
def test_names_without_a_registry_host_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"names no registry host .*pynode load"):
        pull_reference(name)


@pytest.mark.parametrize(("name", "tag"), [
    ("10.0.0.2:2377/Web", None), ("10.0.0.2:2377/web", "sha512:00"), ("10.0.0.2:2377/web", "bad tag"),
    ("10.0.0.2:2377/web@md5:" + "0" * 32, None),
])
def test_bad_pull_references_name_the_argument(name: str, tag: str | None) -> None:
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        pull_reference(name, tag)


# --- which hosts may be spoken to in plain http ---------------------------------------------------------
@pytest.mark.parametrize(("host", "entries", "expected"), [
    ("127.0.0.1:5000", ["127.0.0.1:5000"], True),
    ("127.0.0.1:5001", ["127.0.0.1:5000"], False),
    ("127.0.0.1:5001", ["127.0.0.0/8"], True),
    ("10.1.2.3:2377", ["10.1.0.0/16", "x:1"], True),
    ("10.2.2.3:2377", ["10.1.0.0/16"], False),
    ("reg.example.com:5000", ["10.0.0.0/8"], False),            # CIDRs match literal addresses only
    ("reg.example.com:5000", ["reg.example.com:5000"], True),
    ("[fd00::1]:5000", ["fd00::/8"], True),
    ("127.0.0.1:5000", [], False),                               # no loopback exception: list it
])
def test_insecure_registries(host: str, entries: list[str], expected: bool) -> None:
    assert is_insecure(host, entries) is expected


def test_daemon_json_insecure_registries(tmp_path: Path) -> None:
    config_file = tmp_path / "daemon.json"
    config_file.write_text(json.dumps({"insecure-registries": ["127.0.0.1:5000", "10.0.0.0/8"]}))
    assert build_config(config_file=config_file, overrides={}).insecure_registries == ("127.0.0.1:5000", "10.0.0.0/8")
    for bad, message in (("http://127.0.0.1:5000", "should not contain"), ("a/b", "neither host"),
                         (5000, "expected a list")):
        config_file.write_text(json.dumps({"insecure-registries": [bad]}))
        with pytest.raises(InvalidArgument, match=f"insecure-registries: .*{message}"):
            build_config(config_file=config_file, overrides={})


# --- certs.d --------------------------------------------------------------------------------------------
def _certs(base: Path, host: str, *names: str) -> Path:
    directory = base / host
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_text(name)
    return directory


def test_certs_d_data_root_first_then_etc_and_never_mixed(tmp_path: Path) -> None:
    settings = settings_for(data_root=tmp_path / "root", insecure=(), etc_dir=tmp_path / "etc")
    first, second = settings.certs_dirs
    assert (first, second) == (tmp_path / "root/certs.d", tmp_path / "etc/certs.d")
    assert find_tls_files("10.0.0.2:2377", settings.certs_dirs).directory is None
    etc = _certs(second, "10.0.0.2:2377", "ca.crt", "client.cert", "client.key")
    found = find_tls_files("10.0.0.2:2377", settings.certs_dirs)
    assert found.directory == etc and found.cas == (etc / "ca.crt",)
    assert found.client == (etc / "client.cert", etc / "client.key")
    own = _certs(first, "10.0.0.2:2377", "ca.crt")  # the data root's directory wins, whole
    found = find_tls_files("10.0.0.2:2377", settings.certs_dirs)
    assert (found.directory, found.cas, found.client) == (own, (own / "ca.crt",), None)
    assert find_tls_files("10.0.0.3:2377", settings.certs_dirs).directory is None  # per host:port


def test_certs_d_pairs_must_be_complete(tmp_path: Path) -> None:
    _certs(tmp_path, "a:1", "client.cert")
    with pytest.raises(InvalidArgument, match="missing key client.key for client certificate client.cert"):
        find_tls_files("a:1", [tmp_path])
    _certs(tmp_path, "b:1", "client.key")
    with pytest.raises(InvalidArgument, match="missing client certificate client.cert for key client.key"):
        find_tls_files("b:1", [tmp_path])


# --- manifests and indexes ------------------------------------------------------------------------------
def _manifest(media_type: str = "application/vnd.oci.image.manifest.v1+json", **extra: object) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 10},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": OTHER, "size": 5}],
        **extra}).encode()


def _index(*platforms: tuple[str, str, str]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + f"{i:064x}", "size": 1,
         "platform": {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}}
        for i, (os_, arch, variant) in enumerate(platforms)]}).encode()


def test_manifests_parse_to_config_and_layers() -> None:
    manifest = parse_manifest(_manifest(), what="x")
    assert manifest.config.digest == DIGEST and manifest.config.size == 10
    assert [(layer.digest, layer.size) for layer in manifest.layers] == [(OTHER, 5)]
    for bad in (b"nope", b"[]", json.dumps({"schemaVersion": 1}).encode(),
                json.dumps({"schemaVersion": 2, "config": {"digest": DIGEST}}).encode(),
                _manifest(layers=[{"digest": "md5:00", "size": 1}])):
        with pytest.raises(BadContent, match="^x: "):
            parse_manifest(bad, what="x")


def test_index_selection_picks_this_platform_and_names_the_others() -> None:
    entries = parse_index(_index(("unknown", "unknown", ""), ("linux", "arm64", "v8"), ("linux", "amd64", ""),
                                 ("linux", "arm", "v6"), ("linux", "arm", "v7")), what="x")
    assert select_platform(entries, Platform.parse("linux/amd64"), what="x") == entries[2]
    assert select_platform(entries, Platform.parse("linux/arm/v7"), what="x") == entries[4]
    assert select_platform(entries, Platform.parse("linux/arm"), what="x") == entries[3]
    with pytest.raises(ManifestUnknown, match=r"no matching manifest for linux/s390x .*linux/amd64, linux/arm/v6"):
        select_platform(entries, Platform.parse("linux/s390x"), what="x")
    assert str(Platform.parse("")) in ("linux/amd64", "linux/arm64")
    with pytest.raises(InvalidArgument, match="invalid platform 'linux'"):
        Platform.parse("linux")


def test_media_types_from_the_header_or_the_body() -> None:
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    assert media_type_of(_manifest(), f"{docker}; charset=utf-8") == docker
    assert media_type_of(_manifest(docker), "application/octet-stream") == docker
    assert media_type_of(json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "") == \
        "application/vnd.oci.image.index.v1+json"
    layer = Descriptor(media_type="application/vnd.docker.image.rootfs.diff.tar.gzip", digest=OTHER, size=1)
    assert layer_is_gzip(layer, what="x") is True
    plain = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar", digest=OTHER, size=1)
    assert layer_is_gzip(plain, what="x") is False
    zstd = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar+zstd", digest=OTHER, size=1)
    with pytest.raises(BadContent, match="unsupported media type"):
        layer_is_gzip(zstd, what="x")


# --- `images --digests` rows ----------------------------------------------------------------------------
def test_image_rows_show_digests_as_docker_does() -> None:
    pulled = {"RepoTags": ["reg:5000/bb:latest", "bb:1"], "RepoDigests": [f"reg:5000/bb@{DIGEST}"]}
    assert image_names(pulled) == [("reg:5000/bb", "latest", "<none>"), ("bb", "1", "<none>")]
    assert image_names(pulled, digests=True) == [("reg:5000/bb", "latest", DIGEST), ("bb", "1", "<none>")]
    by_digest_only = {"RepoTags": [], "RepoDigests": [f"reg:5000/bb@{DIGEST}"]}
    assert image_names(by_digest_only) == [("reg:5000/bb", "<none>", "<none>")]
    assert image_names(by_digest_only, digests=True) == [("reg:5000/bb", "<none>", DIGEST)]
    assert image_names({"RepoTags": [], "RepoDigests": []}) == [("<none>", "<none>", "<none>")]
