"""What `load` and `image bootstrap` print: a progress line per layer, and for a base that cannot be made a
clear error that leaves the store as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.node.images.archives import docker_archive, f, layer_tar, listing, sha
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged


def test_load_shows_progress_per_layer(engine: EngineProcess, tmp_path: Path) -> None:
    layers = [layer_tar([f("a", b"1" * 5000)]), layer_tar([f("b", b"2" * 9000)])]
    archive = tmp_path / "two.tar"
    archive.write_bytes(docker_archive(layers, tags=["two:1"]))
    out = engine.cli("load", "-i", str(archive)).stdout.splitlines()
    progress = [line for line in out if "Loading layer" in line]
    # one line per layer (layers are unpacked in parallel: in the order they finish)
    assert sorted(line.split(":")[0] for line in progress) == sorted(sha(layer)[7:19] for layer in layers)
    assert out[-1] == "Loaded image: two:1"
    quiet = engine.cli("load", "-q", "-i", str(archive)).stdout
    assert quiet == "Loaded image: two:1\n"


def test_bootstrap_of_what_cannot_be_made_is_one_clear_error(engine: EngineProcess) -> None:
    before = listing(engine.data_root)
    unknown = engine.cli("image", "bootstrap", "alpine", check=False)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "known bases are busybox, debian" in unknown.stderr
    no_suite = engine.cli("image", "bootstrap", "debian:nosuchsuite", check=False, timeout=300)
    assert no_suite.returncode == 1
    assert no_suite.stderr.strip().splitlines()[-1].startswith(
        "Error response from daemon: mmdebstrap nosuchsuite failed")
    assert "mirror" in no_suite.stderr
    assert listing(engine.data_root) == before
    assert engine.cli("images", "-q").stdout == ""
