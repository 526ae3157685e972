from __future__ import annotations

import tarfile

import pytest

from node.images.filters import filter_images, parse_filters
from node.images.model import Image, chain_ids_of, sha256_digest
from node.images.tarformat import BadLayer, clean_path, parse_header, parse_number, parse_pax, through_symlink


@pytest.mark.parametrize(("name", "clean"), [
    ("./a/b", "a/b"), ("a//b/", "a/b"), (".", ""), ("./", ""), ("a/./b", "a/b"),
])
def test_clean_path(name: str, clean: str) -> None:
    assert clean_path(name) == clean


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a/.."])
def test_escaping_paths_are_refused(name: str) -> None:
    with pytest.raises(BadLayer, match="escapes the layer"):
        clean_path(name)


def test_writes_through_symlinks_are_found() -> None:
    links = {"lib", "a/b"}
    assert through_symlink("lib/x", links) == "lib"
    assert through_symlink("a/b/c/d", links) == "a/b"
    assert through_symlink("lib", links) is None  # replacing the link itself is fine
    assert through_symlink("libx/y", links) is None


def test_header_numbers_octal_and_base256() -> None:
    assert parse_number(b"0000644\0") == 0o644
    assert parse_number(bytes([0x80]) + (12345).to_bytes(11, "big")) == 12345
    with pytest.raises(BadLayer):
        parse_number(b"zz\0")


def test_pax_records_and_headers() -> None:
    info = tarfile.TarInfo("x" * 150)
    info.size = 3
    info.pax_headers = {"SCHILY.xattr.user.a": "b"}
    raw = info.tobuf(tarfile.PAX_FORMAT)
    pax_header = parse_header(raw[:512])
    assert pax_header.typeflag == b"x"
    records = parse_pax(raw[512:512 + pax_header.size])
    assert records["path"] == b"x" * 150
    assert records["SCHILY.xattr.user.a"] == b"b"
    corrupt = bytearray(raw[:512])
    corrupt[0] ^= 1
    with pytest.raises(BadLayer, match="checksum"):
        parse_header(bytes(corrupt))


def test_chain_ids_follow_the_oci_formula() -> None:
    a, b = sha256_digest(b"a"), sha256_digest(b"b")
    assert chain_ids_of([a, b]) == [a, sha256_digest(f"{a} {b}".encode())]


def test_image_filters() -> None:
    images = [Image(id="sha256:1", repo_tags=("busybox:latest",), created="2024-01-02"),
              Image(id="sha256:2", repo_tags=(), created="2024-01-01"),
              Image(id="sha256:3", repo_tags=("me/app:v1",), created="2024-01-03",
                    config={"config": {"Labels": {"a": "b"}}})]
    by_id = {i.id: i for i in images}

    def pick(text: str) -> list[str]:
        return [i.id for i in filter_images(images, parse_filters(text), resolve=by_id.__getitem__)]
    assert pick('{"dangling":["true"]}') == ["sha256:2"]
    assert pick('{"dangling":["false"]}') == ["sha256:1", "sha256:3"]
    assert pick('{"reference":["busy*"]}') == ["sha256:1"]
    assert pick('{"reference":["me/app:v*"]}') == ["sha256:3"]
    assert pick('{"label":["a=b"]}') == ["sha256:3"]
    assert pick('{"before":["sha256:1"]}') == ["sha256:2"]
    with pytest.raises(Exception, match="invalid filter 'bogus'"):
        parse_filters('{"bogus":["1"]}')
