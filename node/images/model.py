"""The image store's typed objects: `Image` (what containers and the builder consume) and `Layer`."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """One image as the store holds it.

    id: "sha256:<hex>" of the config JSON bytes. repo_tags: familiar names (`busybox:latest`).
    config: the OCI image config as a dict (`config.Cmd`, `config.Env`, `rootfs.diff_ids`, `history`).
    diff_ids / chain_ids: bottom layer first; `chain_ids[-1]` names the top layer's overlay2 directory.
    created: RFC 3339 string from the config. size: the sum of the layers' content sizes in bytes.
    manifest_digest: the store's own OCI manifest (what `save` exports). pulled_manifests: digests of the
    manifests (and indexes) a registry served for it, kept as pulled. repo_digests: `name@sha256:...`
    references (Docker's RepoDigests), each naming one of `digests`.
    """

    id: str
    repo_tags: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    diff_ids: tuple[str, ...] = ()
    chain_ids: tuple[str, ...] = ()
    created: str = ""
    size: int = 0
    manifest_digest: str = ""
    build_cache: bool = False  # a builder step's result: hidden from listings while untagged
    repo_digests: tuple[str, ...] = ()
    pulled_manifests: tuple[str, ...] = ()

    @property
    def digests(self) -> frozenset[str]:
        """Every manifest digest the image is known by: its own and those it was pulled as."""
        return frozenset(d for d in (self.manifest_digest, *self.pulled_manifests) if d)

    @property
    def top_chain_id(self) -> str | None:
        return self.chain_ids[-1] if self.chain_ids else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """A read-only layer: its chain id names the overlay2 directory; `size` is its content size."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    tar_size: int


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    """`sha256:<hex>` -> `<hex>`; refuses other algorithms so a digest can safely name a file."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"unsupported digest {digest!r}")
    return hexpart


def chain_ids_of(diff_ids: Sequence[str]) -> list[str]:
    """OCI ChainID: chain(L0) = diff(L0); chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else sha256_digest(f"{chains[-1]} {diff_id}".encode()))
    return chains


def go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
