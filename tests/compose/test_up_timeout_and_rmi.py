"""`up -t` (the stop timeout when up recreates) and `down --rmi local|all`, as a Compose user sees them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.compose.conftest import Compose, WriteFn

pytestmark = pytest.mark.privileged

# Ignores SIGTERM but notes when it came; notes it is alive every 0.2 s, by the kernel's uptime, in a file
# per container (the project directory is mounted): the old container's file outlives its removal.
STUBBORN_SH = """\
now() { cut -d' ' -f1 /proc/uptime; }
log=/work/log.$(hostname)
trap 'echo TERM $(now) >> $log' TERM
while true; do echo alive $(now) >> $log; sleep 0.2; done
"""
STUBBORN = """
    services:
      stubborn:
        image: busybox
        command: ["sh", "/work/stubborn.sh"]
        volumes: ["./:/work"]
        stop_grace_period: 40s
    """


def lived_after_sigterm(log: str) -> float:
    """Seconds from the SIGTERM to the last sign of life (the SIGKILL came within 0.2 s of it); 0 when it
    was killed before its trap could note the SIGTERM."""
    events = [(kind, float(at)) for kind, at in (line.split() for line in log.splitlines())]
    term = next((at for kind, at in events if kind == "TERM"), None)
    return 0.0 if term is None else max(at for _, at in events) - term


def deaths(compose: Compose, *, since: float, until: float) -> list[dict[str, str]]:
    """The `die` events of containers between the two times, with their attributes (exitCode, name)."""
    found = compose.engine.cli("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                               "--filter", "event=die", "--format", "{{json .}}").stdout
    return [json.loads(line)["Actor"]["Attributes"] for line in found.splitlines() if line.strip()]


def test_up_t_kills_a_container_that_ignores_sigterm_after_that_many_seconds(compose: Compose, write: WriteFn,
                                                                            project_dir: Path) -> None:
    write("stubborn.sh", STUBBORN_SH)
    write("compose.yaml", STUBBORN)
    compose("up", "-d")
    old = compose.containers("myapp")[0]["Id"]
    since = time.time()
    started = time.monotonic()
    recreated = compose("up", "-d", "--force-recreate", "-t", "3")
    elapsed = time.monotonic() - started
    assert "Container myapp-stubborn-1  Recreated" in recreated.stderr, recreated.stderr
    [now] = compose.containers("myapp")
    assert now["Id"] != old and now["State"] == "running"
    died = [d for d in deaths(compose, since=since, until=time.time()) if d.get("name") == "myapp-stubborn-1"]
    assert [d["exitCode"] for d in died] == ["137"], "the old container was not killed (SIGKILL: 137) once"
    # It got SIGTERM, lived out the 3 s, then was killed; the service's own 40 s grace period was not waited for.
    lived = lived_after_sigterm((project_dir / f"log.{old[:12]}").read_text())
    assert 2.5 <= lived < 15, f"the old container lived {lived:.1f} s after SIGTERM with up -t 3"
    assert elapsed < 30, f"up -t 3 took {elapsed:.1f} s to recreate a container that ignores SIGTERM"
    compose("down", "-t", "0")


APP = {
    "app/Dockerfile": 'FROM busybox\nRUN echo built > /built\nCMD ["cat", "/built"]\n',
    "compose.yaml": """
        services:
          built:
            build: ./app
          named:
            build: ./app
            image: myapp-named:1
          plain:
            image: busybox
            init: true
            command: sleep 1000
        """,
}


def tags(compose: Compose) -> set[str]:
    return {t for image in compose.engine.client.get("/images/json") for t in image.get("RepoTags") or []}


def test_down_rmi_local_removes_built_images_and_all_also_the_others(compose: Compose, write: WriteFn) -> None:
    for name, text in APP.items():
        write(name, text)
    compose("up", "-d", "--build")
    assert {"myapp-built:latest", "myapp-named:1", "busybox:latest"} <= tags(compose)

    local = compose("down", "--rmi", "local")
    assert compose.containers("myapp") == []
    assert "Image myapp-built  Removed" in local.stderr and "Image myapp-named:1  Removed" in local.stderr
    left = tags(compose)
    assert not {"myapp-built:latest", "myapp-named:1"} & left, "--rmi local kept an image the project built"
    assert "busybox:latest" in left, "--rmi local removed an image the project did not build"

    compose("up", "-d", "--build")
    everything = compose("down", "--rmi", "all")
    assert "Image busybox  Removed" in everything.stderr, everything.stderr
    assert not {"myapp-built:latest", "myapp-named:1", "busybox:latest"} & tags(compose)
    assert compose.engine.cli("image", "inspect", "busybox", check=False).returncode != 0
