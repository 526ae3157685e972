from __future__ import annotations

import pytest

from node.errors import InvalidArgument
from node.images.refs import id_prefix, is_full_id, normalize_tag, parse_reference, short_id


@pytest.mark.parametrize(("text", "familiar", "full"), [
    ("busybox", "busybox:latest", "docker.io/library/busybox:latest"),
    ("busybox:latest", "busybox:latest", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "busybox:latest", "docker.io/library/busybox:latest"),
    ("library/busybox:1.36", "busybox:1.36", "docker.io/library/busybox:1.36"),
    ("me/app", "me/app:latest", "docker.io/me/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("registry.example.com/a/b:c", "registry.example.com/a/b:c", "registry.example.com/a/b:c"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
])
def test_references_normalise_as_docker(text: str, familiar: str, full: str) -> None:
    ref = parse_reference(text)
    assert ref.familiar == familiar
    assert ref.full == full


@pytest.mark.parametrize("text", ["", "Busybox", "busybox:", "a b", "busybox:-bad", "a//b", "x@sha256:12"])
def test_bad_references_are_refused_with_the_reference_named(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid reference format|must be lowercase"):
        parse_reference(text)


def test_digest_reference_keeps_the_digest() -> None:
    digest = "sha256:" + "a" * 64
    ref = parse_reference(f"busybox@{digest}")
    assert ref.digest == digest and ref.tag is None
    assert ref.familiar == f"busybox@{digest}"


def test_ids_and_prefixes() -> None:
    full = "sha256:" + "ab" * 32
    assert is_full_id(full) and is_full_id(full[7:])
    assert not is_full_id("abc")
    assert id_prefix("sha256:abc") == "abc"
    assert id_prefix("abc") == "abc"
    assert id_prefix("busybox") is None
    assert short_id(full) == "ab" * 6


def test_normalize_tag_refuses_digests() -> None:
    assert normalize_tag("busybox") == "busybox:latest"
    with pytest.raises(InvalidArgument, match="digest"):
        normalize_tag("busybox@sha256:" + "a" * 64)
