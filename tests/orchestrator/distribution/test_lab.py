"""Image distribution on a 2-host lab cluster: h1 a manager with an image only it has, h2 a worker whose engine
fetches it through ensure_image over the cluster's mutual TLS (the manager's registry on port 2377)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from node.client import EngineClient
from orchestrator.agent.images import ImageUnavailable, ensure_image, install_certificates, pinned_reference
from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.lab import Lab
from orchestrator.security import client_context
from tests.support.lab import lab_spot

pytestmark = [pytest.mark.privileged, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """h1 inits a swarm, h2 joins it as a worker; both bootstrapped busybox (the base h2 must not fetch again)."""
    with lab_spot() as spot:
        made = spot.up(2)
        procs = [subprocess.Popen(made.exec_argv(h.name, "pynode", "image", "bootstrap", "busybox")[0],
                                  env=made.exec_argv(h.name, "true")[1], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for h in made.hosts]
        assert all(p.wait(120) == 0 for p in procs)
        h1 = made.host("h1").address
        _ok(made, "h1", "pyswarm", "init", "--advertise-addr", h1)
        token = _ok(made, "h1", "pyswarm", "join-token", "worker", "-q").strip()
        _ok(made, "h2", "pyswarm", "join", "--token", token, f"{h1}:2377")
        yield made


def _ok(lab: Lab, host: str, *cmd: str) -> str:
    result = lab.exec(host, *cmd)
    assert result.returncode == 0, f"{' '.join(cmd)} on {host}: {result.stderr}{result.stdout}"
    return result.stdout


def _build(lab: Lab, tmp_path: Path, tag: str, content: str) -> str:
    """An image only h1 has: busybox plus one layer; returns its id."""
    context = tmp_path / f"ctx-{content}"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nCOPY hello /hello\n")
    (context / "hello").write_text(content)
    _ok(lab, "h1", "pynode", "build", "-q", "-t", tag, str(context))
    return _inspect(lab, "h1", tag)["Id"]


def _inspect(lab: Lab, host: str, ref: str) -> dict[str, object]:
    with EngineClient(lab.host(host).url) as client:
        found: dict[str, object] = client.get(f"/images/{ref}/json")
    return found


def _served_blobs(lab: Lab) -> list[str]:
    """Blobs h1's registry sent, from its swarm daemon's log."""
    text = SwarmPaths(data_root=lab.host("h1").data_root).log_file.read_text(errors="replace")
    return re.findall(r"registry: blob (sha256:[0-9a-f]{64}) \(\d+ bytes\) to node", text)


def test_a_worker_fetches_an_image_only_the_manager_has(lab: Lab, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.agent.images")
    image_id = _build(lab, tmp_path, "app:1", "one")
    managers = [f"{lab.host('h1').address}:2377"]
    h2 = SwarmPaths(data_root=lab.host("h2").data_root)
    base = _inspect(lab, "h1", "busybox")["RootFS"]["Layers"]  # type: ignore[index]
    top = _inspect(lab, "h1", "app:1")["RootFS"]["Layers"][-1]  # type: ignore[index]
    served_before = _served_blobs(lab)
    with EngineClient(lab.host("h2").url) as client:
        ensure_image(client, "app:1", managers=managers, paths=h2)
        pulled = _inspect(lab, "h2", "app:1")
        assert pulled["Id"] == image_id and pulled["RepoTags"] == ["app:1"]
        assert pulled["RepoDigests"] == []  # the registry-prefixed names are gone
        sent = _served_blobs(lab)[len(served_before):]
        assert top in sent and not set(base) & set(sent), sent  # the busybox layer h2 had did not move
        assert any("Already exists" in m for m in caplog.messages)
        ensure_image(client, "app:1", managers=managers, paths=h2)  # present: nothing asked
        assert _served_blobs(lab)[len(served_before):] == sent

        # a pinned reference: a rebuilt image changes it, and h2 fetches the new one by digest
        with EngineClient(lab.host("h1").url) as h1_client:
            first = pinned_reference(h1_client, "app:1")
            ensure_image(client, first, managers=managers, paths=h2)  # the image h2 has is that digest
            assert len(_served_blobs(lab)) == len(served_before) + len(sent)
            rebuilt_id = _build(lab, tmp_path, "app:1", "two")
            second = pinned_reference(h1_client, "app:1")
        assert second != first and second.startswith("app:1@sha256:")
        ensure_image(client, second, managers=managers, paths=h2)
        again = _inspect(lab, "h2", second)
        assert again["Id"] == rebuilt_id and again["RepoTags"] == ["app:1"]
        assert again["RepoDigests"] == [f"app@{second.rpartition('@')[2]}"]
        run = lab.exec("h2", "pynode", "run", "--rm", second, "cat", "/hello")
        assert run.returncode == 0 and run.stdout == "two", run.stderr

        with pytest.raises(ImageUnavailable) as missing:
            ensure_image(client, "nothere:1", managers=managers, paths=h2)
        text = str(missing.value)
        assert "\n" not in text and text.startswith("image nothere:1 ") and managers[0] in text
        assert f"manifest for {managers[0]}/nothere:1 not found" in text


def test_without_a_node_certificate_the_manager_refuses(lab: Lab, tmp_path: Path) -> None:
    _build(lab, tmp_path, "secret:1", "s")
    manager = f"{lab.host('h1').address}:2377"
    h2 = SwarmPaths(data_root=lab.host("h2").data_root)
    context = client_context(ca_pem=h2.ca_cert.read_bytes())  # verifies the manager by IP, shows no certificate
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(f"https://{manager}/v2/secret/manifests/1")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"
    # through the engine: certs.d with the CA only, no client pair
    directory = install_certificates(h2, manager)
    (directory / "client.cert").unlink()
    (directory / "client.key").unlink()
    refused = lab.exec("h2", "pynode", "pull", f"{manager}/secret:1")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"Error response from daemon: pull access denied for {manager}/secret:1: denied: "
                                     "a node certificate of this cluster is required"), refused.stderr
    assert "secret:1" not in json.dumps(_images(lab, "h2"))


def _images(lab: Lab, host: str) -> list[object]:
    with EngineClient(lab.host(host).url) as client:
        return list(client.get("/images/json"))
