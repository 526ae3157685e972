"""The manager's registry routes over a real engine, in process (Starlette's AppClient; the peer's verified
certificate is put where the TLS server puts it): what is served, from where, and every error's shape."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from orchestrator.agent.images import pinned_reference
from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.distribution import mount_registry
from orchestrator.model import NodeRole
from orchestrator.security import RootCA
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _as_peer(app: FastAPI, state: dict[str, Any]) -> Callable[..., Any]:
    """What servers.py's protocol does per connection: the peer's certificate (or `local`) in scope state."""
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "state": dict(state)} if scope["type"] == "http" else scope, receive, send)
    return wrapped


class AppClient:
    """httpx over the app in process (Starlette's own AppClient now wants another package)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._transport = httpx.ASGITransport(app=app)

    def get(self, path: str) -> httpx.Response:
        return asyncio.run(self._request("GET", path))

    def head(self, path: str) -> httpx.Response:
        return asyncio.run(self._request("HEAD", path))

    async def _request(self, method: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=self._transport, base_url="https://manager:2377") as client:
            return await client.request(method, path)


class Registry:
    def __init__(self, engine: EngineProcess, tmp_path: Path) -> None:
        ca = RootCA.create()
        self.worker = _der(ca.issue(node_id="w1", role=NodeRole.WORKER, cluster_id="c1").cert_pem)
        self.stranger = _der(RootCA.create().issue(node_id="x", role=NodeRole.WORKER, cluster_id="c2").cert_pem)
        self.daemon = SimpleNamespace(engine_url=engine.host, paths=SwarmPaths(data_root=tmp_path / "root"),
                                      manager=object(), state=SimpleNamespace(cluster_id="c1"))
        self.app = FastAPI()
        mount_registry(self.app, self.daemon)  # type: ignore[arg-type]
        self.cache = tmp_path / "root/swarm/distribution/blobs/sha256"

    def client(self, **state: Any) -> AppClient:
        return AppClient(_as_peer(self.app, state or {"peer_cert": self.worker}))


@pytest.fixture
def registry(engine: EngineProcess, tmp_path: Path) -> Iterator[Registry]:
    engine.cli("image", "bootstrap", "busybox")
    yield Registry(engine, tmp_path)


def _build(engine: EngineProcess, tmp_path: Path, tag: str, content: str) -> str:
    context = tmp_path / f"ctx-{content}"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nCOPY hello /hello\n")
    (context / "hello").write_text(content)
    engine.cli("build", "-q", "-t", tag, str(context))
    return engine.cli("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_manifests_by_tag_and_digest_blobs_and_the_cache(registry: Registry, engine: EngineProcess,
                                                          tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orchestrator.distribution")
    image_id = _build(engine, tmp_path, "app:1", "one")
    pinned = pinned_reference(engine.client, "app:1")
    digest = pinned.rpartition("@")[2]
    assert pinned == f"app:1@{digest}" and pinned_reference(engine.client, "busybox").startswith("busybox:latest@")
    client = registry.client()

    ping = client.get("/v2/")
    assert ping.status_code == 200 and ping.headers["docker-distribution-api-version"] == "registry/2.0"
    got = client.get("/v2/app/manifests/1")
    assert got.status_code == 200 and got.headers["content-type"] == OCI_MANIFEST
    assert got.headers["docker-content-digest"] == digest == _sha(got.content)
    head = client.head("/v2/app/manifests/1")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(got.content))
    manifest = got.json()
    assert manifest["config"]["digest"] == image_id
    for descriptor in (manifest["config"], *manifest["layers"]):
        blob = client.get(f"/v2/app/blobs/{descriptor['digest']}")
        assert blob.status_code == 200 and _sha(blob.content) == descriptor["digest"]
        assert len(blob.content) == descriptor["size"] and blob.headers["docker-content-digest"] == descriptor["digest"]
        assert (registry.cache / descriptor["digest"][7:]).is_file()
        assert client.head(f"/v2/app/blobs/{descriptor['digest']}").headers["content-length"] == \
            str(descriptor["size"])
    assert client.get(f"/v2/app/manifests/{digest}").content == got.content
    assert client.get("/v2/library/app/manifests/1").content == got.content  # names as the engine reads them
    exports = [r for r in caplog.messages if "exporting image" in r]
    assert len(exports) == 1, exports  # exported once, however often it is asked for

    # a moved tag is seen; the old manifest stays reachable by digest
    moved_id = _build(engine, tmp_path, "app:1", "two")
    moved = client.get("/v2/app/manifests/1")
    assert moved.json()["config"]["digest"] == moved_id != image_id
    assert client.get(f"/v2/app/manifests/{digest}").json()["config"]["digest"] == image_id
    # a digest asked for before its tag ever was: found in the engine by name@digest, then exported
    _build(engine, tmp_path, "app:2", "three")
    second = pinned_reference(engine.client, "app:2").rpartition("@")[2]
    assert _sha(client.get(f"/v2/app/manifests/{second}").content) == second


def test_registry_errors_have_the_distribution_spec_shape(registry: Registry, engine: EngineProcess,
                                                          tmp_path: Path) -> None:
    _build(engine, tmp_path, "app:1", "one")
    client = registry.client()
    layer = client.get("/v2/app/manifests/1").json()["layers"][-1]["digest"]

    def error(response: Any) -> tuple[int, str]:
        assert set(response.json()) == {"errors"}, response.text
        return response.status_code, response.json()["errors"][0]["code"]

    cases = {
        "/v2/app/manifests/nope": (404, "MANIFEST_UNKNOWN"),
        "/v2/nobody/manifests/latest": (404, "MANIFEST_UNKNOWN"),
        f"/v2/app/manifests/{layer}": (404, "MANIFEST_UNKNOWN"),   # a layer is no manifest
        "/v2/app/manifests/sha256:" + "0" * 64: (404, "MANIFEST_UNKNOWN"),
        "/v2/app/blobs/sha256:" + "0" * 64: (404, "BLOB_UNKNOWN"),
        "/v2/app/blobs/md5:00": (400, "DIGEST_INVALID"),
        "/v2/App/manifests/1": (400, "NAME_INVALID"),
        "/v2/app/manifests/-bad": (400, "MANIFEST_INVALID"),
    }
    for path, expected in cases.items():
        assert error(client.get(path)) == expected, path
    for state, message in (({}, "a node certificate of this cluster is required"),
                           ({"peer_cert": registry.stranger}, "certificate from another cluster")):
        refused = AppClient(_as_peer(registry.app, state)).get("/v2/app/manifests/1")
        assert error(refused) == (403, "DENIED") and message in refused.json()["errors"][0]["message"]
    assert registry.client(local=True).get("/v2/app/manifests/1").status_code == 200  # the local socket reads
    registry.daemon.manager = None
    assert error(client.get("/v2/app/manifests/1")) == (503, "UNAVAILABLE")
