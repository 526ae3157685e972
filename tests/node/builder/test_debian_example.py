"""The examples/debian-nginx app: built FROM a bootstrapped debian:bookworm, apt-get install through the
bridge's masquerade, served on a published port. Slow: mmdebstrap and the Debian mirror."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.engine import EngineProcess

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "debian-nginx"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_debian_nginx_example_builds_and_serves(shared_engine: EngineProcess, unique: Callable[[str], str]) -> None:
    e = shared_engine
    if e.cli("image", "inspect", "debian:bookworm", check=False).returncode != 0:
        e.cli("image", "bootstrap", "debian:bookworm", timeout=900)
    tag = unique("debian-nginx")
    build = e.cli("build", "-t", tag, str(EXAMPLE), timeout=900)
    assert "nginx" in build.stderr
    port = _free_port()
    name = unique("web")
    e.cli("run", "-d", "--name", name, "-p", f"{port}:80", tag)
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Served by nginx" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.3)
        assert "Served by nginx from Debian packages" in body
    finally:
        e.cli("rm", "-f", name)
        e.cli("rmi", tag)
