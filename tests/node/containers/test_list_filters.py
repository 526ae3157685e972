"""`ps --filter` with Docker's filters beyond the basic ones, through the CLI against a real daemon: health,
network (name or ID), volume (name, bind source or destination), before/since (creation order), publish and
expose (a port, a port/proto or a range), and the bad values Docker refuses."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged


@pytest.fixture
def made(busybox_engine: EngineProcess, unique: Callable[[str], str]) -> Iterator[dict[str, str]]:
    """Unique names for containers (and one network and volume), all removed after the test."""
    names: dict[str, str] = {}
    yield names
    containers = [v for k, v in names.items() if k not in ("net", "vol")]
    if containers:
        busybox_engine.cli("rm", "-f", *containers, check=False)
    if "net" in names:
        busybox_engine.cli("network", "rm", names["net"], check=False)
    if "vol" in names:
        busybox_engine.cli("volume", "rm", names["vol"], check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ps_filters(busybox_engine: EngineProcess, made: dict[str, str], unique: Callable[[str], str],
                    tmp_path: Path) -> None:
    e = busybox_engine
    made.update({k: unique(f"f{k}") for k in ("net", "vol", "web", "job", "ok", "sick", "slow")})
    net_id = e.cli("network", "create", made["net"]).stdout.strip()
    port = _free_port()
    run = ("run", "-d", "--name")
    e.cli(*run, made["web"], "--network", made["net"], "-v", f"{made['vol']}:/data", "-p", f"{port}:80",
          "busybox", "sleep", "100")
    e.cli(*run, made["job"], "-v", f"{tmp_path}:/mnt", "--expose", "7000", "busybox", "sleep", "100")
    e.cli(*run, made["ok"], "--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "100")
    e.cli(*run, made["sick"], "--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1",
          "busybox", "sleep", "100")
    e.cli(*run, made["slow"], "--health-cmd", "true", "--health-interval", "300s", "busybox", "sleep", "100")
    ours = {made[k] for k in ("web", "job", "ok", "sick", "slow")}

    def listed(*filters: str) -> set[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return set(e.cli("ps", "-a", "--format", "{{.Names}}", *args).stdout.split()) & ours

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and listed("health=healthy", "health=unhealthy") != {made["ok"], made["sick"]}:
        time.sleep(0.3)
    assert listed("health=healthy") == {made["ok"]}
    assert listed("health=unhealthy") == {made["sick"]}
    assert listed("health=starting") == {made["slow"]}
    assert listed("health=none") == {made["web"], made["job"]}
    assert listed(f"network={made['net']}") == listed(f"network={net_id[:12]}") == {made["web"]}
    assert made["job"] in listed("network=bridge") and made["web"] not in listed("network=bridge")
    assert listed(f"volume={made['vol']}") == listed("volume=/data") == {made["web"]}
    assert listed(f"volume={tmp_path}") == listed("volume=/mnt") == {made["job"]}
    assert listed(f"before={made['ok']}") == {made["web"], made["job"]}
    assert listed(f"since={made['ok']}") == {made["sick"], made["slow"]}
    assert listed(f"since={made['web']}", f"before={made['slow']}") == {made["job"], made["ok"], made["sick"]}
    assert listed(f"publish={port}") == listed(f"publish={port}/tcp") == listed("expose=80") == {made["web"]}
    assert listed(f"publish={port}/udp") == listed("publish=80") == set()
    assert listed("expose=6990-7010") == listed("expose=7000/tcp") == {made["job"]}
    assert listed("expose=80", "expose=7000") == {made["web"], made["job"]}
    assert listed("health=healthy", "expose=7000") == set()  # different filters must all match
    for bad, message in (("health=ill", "Unrecognised filter value for health: ill"),
                         ("publish=80:80", "filter for 'publish' should not contain ':'"),
                         ("expose=x", "error while looking up for expose x"),
                         ("before=nosuchcontainer", "No such container: nosuchcontainer"),
                         ("is-task=true", "not supported")):
        refused = e.cli("ps", "--filter", bad, check=False)
        assert refused.returncode == 1 and message in refused.stderr and refused.stderr.count("\n") == 1, bad
