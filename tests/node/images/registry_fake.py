"""A registry in memory behind httpx.MockTransport, for the store's pull tests: it serves what a test puts in
(and can tamper with), and records every request so a test can tell what was downloaded."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from tests.node.images.archives import config_for, sha

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_PLAIN = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class FakeRegistry:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # "GET /v2/..." in order
    short: dict[str, int] = field(default_factory=dict)  # digest -> bytes to send (a cut connection)
    delay: dict[str, float] = field(default_factory=dict)  # digest -> seconds before answering (a slow link)

    def add_image(self, name: str, tag: str, layers: Sequence[bytes], *, gzip_layers: bool = True,
                  media_type: str = OCI_MANIFEST, cmd: Sequence[str] = ("sh",)) -> tuple[str, bytes]:
        """Push an image; returns (manifest digest, manifest bytes)."""
        config = config_for(layers, cmd=cmd)
        blobs = [gzip.compress(layer, mtime=0) if gzip_layers else layer for layer in layers]
        layer_type = OCI_GZIP if gzip_layers else OCI_PLAIN
        if media_type == DOCKER_MANIFEST:
            layer_type = "application/vnd.docker.image.rootfs.diff.tar" + (".gzip" if gzip_layers else "")
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                       "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": sha(b), "size": len(b)} for b in blobs],
        }).encode()
        for blob in (config, *blobs):
            self.blobs[sha(blob)] = blob
        self.put_manifest(name, tag, media_type, manifest)
        return sha(manifest), manifest

    def put_manifest(self, name: str, tag: str, media_type: str, data: bytes) -> str:
        self.manifests[(name, tag)] = (media_type, data)
        self.manifests[(name, sha(data))] = (media_type, data)
        return sha(data)

    def add_index(self, name: str, tag: str, entries: Sequence[tuple[str, str, str]]) -> str:
        """An OCI index over manifests already pushed: (os, architecture, manifest digest)."""
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(self.manifests[(name, digest)][1]),
             "platform": {"os": os_, "architecture": arch}} for os_, arch, digest in entries]}).encode()
        return self.put_manifest(name, tag, OCI_INDEX, index)

    def blob_gets(self) -> list[str]:
        return [r for r in self.requests if "/blobs/" in r]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if "/manifests/" in path:
            name, _, reference = path.removeprefix("/v2/").rpartition("/manifests/")
            found = self.manifests.get((name, reference))
            if found is None:
                return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            media_type, data = found
            return httpx.Response(200, content=data, headers={"Content-Type": media_type,
                                                              "Docker-Content-Digest": sha(data)})
        if "/blobs/" in path:
            digest = path.rpartition("/blobs/")[2]
            blob = self.blobs.get(digest)
            time.sleep(self.delay.get(digest, 0.0))
            if blob is None:
                return _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return httpx.Response(200, content=blob[: self.short.get(digest, len(blob))])
        return _error(404, "NAME_UNKNOWN", "repository name not known to registry")


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message, "detail": None}]})
