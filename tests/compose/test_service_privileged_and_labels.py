"""A service's `privileged: true` and `labels:` reach its container, as `docker compose up` makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.compose.conftest import Compose, WriteFn

pytestmark = pytest.mark.privileged



def inspect(compose: Compose, name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose.engine.client.get(f"/containers/{name}/json")
    return found


def capabilities(status: str, field: str) -> int:
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:")), 16)


def effective_capabilities(compose: Compose, service: str) -> int:
    return capabilities(compose("exec", "-T", service, "cat", "/proc/self/status").stdout, "CapEff")


def host_capabilities() -> int:
    """Every capability this kernel has: the bounding set of the (root) test process."""
    return capabilities(Path("/proc/self/status").read_text(), "CapBnd")


def test_labels_reach_the_container_beside_composes_own(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          mapped:
            image: busybox
            init: true
            command: sleep 1000
            labels: {tier: front, com.example.team: ops}
          listed:
            image: busybox
            init: true
            command: sleep 1000
            labels: [tier=back, "com.example.empty="]
        """)
    compose("up", "-d")
    mapped = inspect(compose, "myapp-mapped-1")["Config"]["Labels"]
    assert mapped["tier"] == "front" and mapped["com.example.team"] == "ops"
    assert mapped["com.docker.compose.service"] == "mapped" and mapped["com.docker.compose.project"] == "myapp"
    listed = inspect(compose, "myapp-listed-1")["Config"]["Labels"]
    assert listed["tier"] == "back" and listed["com.example.empty"] == ""
    assert not inspect(compose, "myapp-mapped-1")["HostConfig"]["Privileged"]
    compose("down", "-t", "0")


PRIVILEGED = """
    services:
      boss:
        image: busybox
        init: true
        command: sleep 1000
        privileged: true
      worker:
        image: busybox
        init: true
        command: sleep 1000
    """


def test_privileged_reaches_the_container(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", PRIVILEGED)
    compose("create")
    assert inspect(compose, "myapp-boss-1")["HostConfig"]["Privileged"] is True
    assert inspect(compose, "myapp-worker-1")["HostConfig"]["Privileged"] is False
    compose("down")


def test_privileged_container_runs_with_every_capability(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", PRIVILEGED)
    compose("up", "-d")
    assert effective_capabilities(compose, "boss") == host_capabilities()
    assert effective_capabilities(compose, "worker") != host_capabilities()  # Docker's default set, fewer
    compose("down", "-t", "0")
