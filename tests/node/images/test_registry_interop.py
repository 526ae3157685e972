"""`pynode pull` against a real OCI distribution server: Debian's docker-registry on 127.0.0.1 with a random
port, its own config and a temporary storage directory (the package's init service is never used), filled
by skopeo from a `pynode save` archive. Which blobs were fetched is read from the registry's access log."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from node.images.model import go_arch
from tests.node.images.archives import listing
from tests.support.engine import EngineProcess

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(not shutil.which("docker-registry") or not shutil.which("skopeo"),
                       reason="needs docker-registry and skopeo (scripts/install.sh)"),
]
_CONFIG = """version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Registry:
    port: int
    storage: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """`GET /v2/...` of every request answered so far, in order (the access log, synced by a probe)."""
        probe = f"/v2/probe-{uuid.uuid4().hex[:8]}/manifests/x"
        httpx.get(f"http://{self.host}{probe}", timeout=5)
        deadline = time.monotonic() + 5
        while probe not in self.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = re.findall(r'"([A-Z]+ /v2/\S*) HTTP/1\.1"', self.log_path.read_text())
        return [line for line in lines if "/probe-" not in line]

    def blob_gets(self) -> list[str]:
        return [r for r in self.requests() if r.startswith("GET ") and "/blobs/" in r]

    def manifest_digest(self, name: str, tag: str) -> str:
        accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        body = httpx.get(f"http://{self.host}/v2/{name}/manifests/{tag}", headers={"Accept": accept}, timeout=5)
        body.raise_for_status()
        return "sha256:" + hashlib.sha256(body.content).hexdigest()

    def push(self, archive: Path, ref: str) -> None:
        subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"docker://{self.host}/{ref}",
                        "--dest-tls-verify=false"], check=True, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    port, storage = _free_port(), tmp_path / "storage"
    config = tmp_path / "registry.yml"
    config.write_text(_CONFIG.format(storage=storage, port=port))
    log_path = tmp_path / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        found = Registry(port, storage, log_path, proc)
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"docker-registry exited:\n{log_path.read_text()}"
            try:
                if httpx.get(f"http://{found.host}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"docker-registry did not answer:\n{log_path.read_text()}"
            time.sleep(0.1)
        yield found
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def puller(registry: Registry) -> Iterator[EngineProcess]:
    """An engine whose daemon.json lists the registry in insecure-registries (it speaks plain http)."""
    proc = EngineProcess()
    (proc.base / "daemon.json").write_text(json.dumps({"insecure-registries": [registry.host]}))
    proc.start()
    try:
        yield proc
    finally:
        leaked = proc.close()
    assert not leaked, f"test leaked kernel objects: {leaked}"


def _saved_busybox(engine: EngineProcess, tmp_path: Path) -> tuple[Path, str]:
    """busybox bootstrapped, saved, and removed again: (archive, image id)."""
    engine.cli("image", "bootstrap", "busybox")
    image_id = engine.cli("image", "inspect", "--format", "{{.Id}}", "busybox").stdout.strip()
    archive = tmp_path / "busybox.tar"
    engine.cli("save", "-o", str(archive), "busybox")
    engine.cli("rmi", "busybox")
    return archive, image_id


def test_pull_from_a_real_registry(registry: Registry, puller: EngineProcess, tmp_path: Path) -> None:
    archive, image_id = _saved_busybox(puller, tmp_path)
    registry.push(archive, "busybox:latest")
    ref = f"{registry.host}/busybox:latest"
    digest = registry.manifest_digest("busybox", "latest")
    before = len(registry.blob_gets())

    out = puller.cli("pull", ref).stdout.splitlines()
    layer = next(line.split(":")[0] for line in out if line.endswith(": Pulling fs layer"))
    assert out[0] == "latest: Pulling from busybox"
    assert [f"{layer}: Pulling fs layer", f"{layer}: Downloading", f"{layer}: Pull complete"] == \
        [line for line in out if line.startswith(f"{layer}: ")]
    assert out[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {ref}", ref]
    assert len(registry.blob_gets()) - before == 2  # the config and the one layer
    inspect = json.loads(puller.cli("image", "inspect", ref).stdout)[0]
    assert inspect["Id"] == image_id  # the very image that was saved
    assert inspect["RepoDigests"] == [f"{registry.host}/busybox@{digest}"]
    rows = puller.cli("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout.split("\n")
    assert f"{registry.host}/busybox latest {digest}" in rows
    pinned = f"{registry.host}/busybox@{digest}"
    assert puller.cli("run", "--rm", pinned, "echo", "pinned").stdout == "pinned\n"

    fetched = len(registry.blob_gets())
    again = puller.cli("pull", ref).stdout.splitlines()
    assert again == ["latest: Pulling from busybox", f"Digest: {digest}", f"Status: Image is up to date for {ref}",
                     ref]
    assert len(registry.blob_gets()) == fetched  # no blob moved the second time
    by_digest = puller.cli("pull", "-q", pinned).stdout
    assert by_digest == f"{pinned}\n" and len(registry.blob_gets()) == fetched

    data_before = listing(puller.data_root)
    for missing in (f"{registry.host}/busybox:nope", f"{registry.host}/nobody:latest"):
        result = puller.cli("pull", missing, check=False)
        assert result.returncode == 1
        assert result.stderr == f"Error response from daemon: manifest for {missing} not found: " \
                                "manifest unknown: manifest unknown\n"
        assert listing(puller.data_root) == data_before


def test_an_index_a_cut_blob_and_a_registry_that_is_gone(registry: Registry, puller: EngineProcess,
                                                          tmp_path: Path) -> None:
    archive, image_id = _saved_busybox(puller, tmp_path)
    registry.push(archive, "busybox:latest")
    manifest = httpx.get(f"http://{registry.host}/v2/busybox/manifests/latest", timeout=5, headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    entry = {"mediaType": manifest.headers["content-type"], "size": len(manifest.content),
             "digest": "sha256:" + hashlib.sha256(manifest.content).hexdigest()}
    other = "arm64" if go_arch() != "arm64" else "amd64"
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {**entry, "platform": {"os": "linux", "architecture": other}},
        {**entry, "platform": {"os": "linux", "architecture": go_arch()}}]}).encode()
    put = httpx.put(f"http://{registry.host}/v2/busybox/manifests/multi", content=index, timeout=5,
                    headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert put.status_code == 201, put.text

    # a layer blob cut in half in the registry's storage: the pull fails, nothing is left behind
    layer = json.loads(manifest.content)["layers"][0]["digest"][7:]
    data = registry.storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    whole = data.read_bytes()
    data.write_bytes(whole[: len(whole) // 2])
    before = listing(puller.data_root)
    cut = puller.cli("pull", f"{registry.host}/busybox:multi", check=False)
    assert cut.returncode == 1 and cut.stderr.count("\n") == 1, cut.stderr
    assert cut.stderr.startswith(f"Error response from daemon: {registry.host}/busybox:multi: blob sha256:{layer} cut "
                                 "short"), cut.stderr
    assert listing(puller.data_root) == before
    data.write_bytes(whole)

    out = puller.cli("pull", f"{registry.host}/busybox:multi").stdout.splitlines()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    assert f"Digest: {index_digest}" in out  # the tag names the index: its digest is the pull's
    found = json.loads(puller.cli("image", "inspect", f"{registry.host}/busybox@{index_digest}").stdout)[0]
    assert found["Id"] == image_id

    registry.proc.terminate()
    registry.proc.wait(10)
    gone = puller.cli("pull", f"{registry.host}/busybox:latest", check=False)
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"Error response from daemon: cannot reach registry {registry.host}: ")
    assert gone.stderr.count("\n") == 1


def test_https_is_the_default(registry: Registry, engine: EngineProcess, tmp_path: Path) -> None:
    """Without insecure-registries the engine speaks TLS only, and this registry has none."""
    result = engine.cli("pull", f"{registry.host}/busybox:latest", check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"cannot reach registry {registry.host}: " in result.stderr
    assert not any(r.startswith("GET /v2/busybox") for r in registry.requests())
