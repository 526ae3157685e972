"""Images as containers and other images use them, through the CLI: `system df` shows the size a shared
layer accounts for, and `rmi` refuses to leave an image a container uses without a name unless forced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.errors import Conflict
from tests.node.images.archives import docker_archive, f, layer_tar
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged


def test_system_df_shows_the_shared_size(engine: EngineProcess, tmp_path: Path) -> None:
    base = layer_tar([f("big", os.urandom(300_000))])
    for name, extra in (("one", b"1" * 1000), ("two", b"2" * 2000)):
        archive = tmp_path / f"{name}.tar"
        archive.write_bytes(docker_archive([base, layer_tar([f(name, extra)])], tags=[f"{name}:1"]))
        engine.cli("load", "-q", "-i", str(archive))
    rows = {line.split()[0]: line.split() for line in engine.cli("system", "df", "-v").stdout.splitlines()
            if line.startswith(("one ", "two "))}
    # REPOSITORY TAG IMAGE-ID CREATED(3 words) SIZE SHARED UNIQUE CONTAINERS
    assert rows["one"][-4:] == ["301kB", "300kB", "1kB", "0"]
    assert rows["two"][-4:] == ["302kB", "300kB", "2kB", "0"]
    summary = engine.cli("system", "df").stdout.splitlines()[1].split()
    assert summary[:4] == ["Images", "2", "0", "303kB"]  # the shared layer counted once


def test_rmi_of_the_last_name_of_an_image_in_use_needs_force(engine: EngineProcess) -> None:
    engine.cli("image", "bootstrap", "busybox")
    image_id = engine.cli("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    container_id = engine.cli("create", "--name", "user", "busybox", "true").stdout.strip()
    refused = engine.cli("rmi", "busybox", check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr == ("Error response from daemon: conflict: unable to remove repository reference "
                              f"\"busybox\" (must force) - container {container_id[:12]} is using its referenced "
                              f"image {image_id[7:19]}\n")
    with pytest.raises(Conflict):  # the API's 409
        engine.client.delete("/images/busybox:latest")
    assert engine.cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "busybox:latest\n"
    engine.cli("rm", "user")
    assert engine.cli("rmi", "busybox").stdout.startswith("Untagged: busybox:latest\nDeleted: ")


def test_rmi_force_untags_an_image_in_use_and_keeps_it(engine: EngineProcess) -> None:
    engine.cli("image", "bootstrap", "busybox")
    image_id = engine.cli("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    engine.cli("create", "--name", "user", "busybox", "true")
    engine.cli("tag", "busybox", "other:1")
    assert engine.cli("rmi", "other:1").stdout == "Untagged: other:1\n"  # another name is left: no force needed
    assert engine.cli("rmi", "-f", "busybox").stdout == "Untagged: busybox:latest\n"
    assert engine.cli("images", "-a", "--format", "{{.Repository}} {{.ID}}").stdout.split() == ["<none>",
                                                                                                image_id[7:19]]
    engine.cli("start", "-a", "user")  # the container still runs from it
    refused = engine.cli("rmi", image_id[7:19], check=False)
    assert refused.returncode == 1 and "image is being used by container" in refused.stderr
    engine.cli("rm", "user")
    engine.cli("image", "prune", "-f")
    assert engine.cli("images", "-a", "-q").stdout == ""
