"""The flags of logs, exec, run, up and down that issue 5 names, as a Compose user types them, on a real engine."""

from __future__ import annotations

import re
import time

import pytest

from tests.compose.conftest import Compose, WriteFn, free_port
from tests.compose.test_examples import fetch

pytestmark = pytest.mark.privileged


def names(compose: Compose, project: str = "myapp") -> set[str]:
    return {c["Names"][0].lstrip("/") for c in compose.containers(project)}


def test_logs_tail_timestamps_and_follow(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          talk:
            image: busybox
            command: sh -c 'echo line 1; echo line 2; echo line 3; sleep 2; echo line 4'
        """)
    compose("up", "-d")
    followed = compose("logs", "-f", "--no-color", "talk", timeout=60).stdout  # ends when the container does
    assert re.findall(r"^talk-1  \| (line \d)$", followed, re.M) == ["line 1", "line 2", "line 3", "line 4"]
    tail = compose("logs", "--tail", "2", "--no-color", "talk").stdout
    assert tail.splitlines() == ["talk-1  | line 3", "talk-1  | line 4"]
    stamped = compose("logs", "-t", "-n", "1", "--no-color").stdout
    assert re.fullmatch(r"talk-1  \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 4\n", stamped), stamped
    compose("down")


def test_quiet_ids_exec_user_and_index(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          web:
            image: busybox
            init: true
            command: sleep 1000
            scale: 2
        """)
    compose("up", "-d")
    assert sorted(compose("ps", "-q").stdout.split()) == sorted(c["Id"] for c in compose.containers("myapp"))
    busybox = compose.engine.client.get("/images/busybox/json")["Id"].removeprefix("sha256:")
    assert compose("images", "-q").stdout.split() == [busybox]  # full IDs, as compose prints them
    assert compose("exec", "-T", "-u", "nobody", "web", "id", "-un").stdout.strip() == "nobody"
    second = next(c["Id"] for c in compose.containers("myapp") if c["Names"][0].lstrip("/") == "myapp-web-2")
    assert compose("exec", "-T", "--index", "2", "web", "hostname").stdout.strip() == second[:12]
    missing = compose("exec", "-T", "--index", "3", "web", "true", check=False)
    assert missing.returncode == 1 and 'service "web" is not running container #3' in missing.stderr
    compose("down", "-t", "0")


def test_run_entrypoint_no_deps_and_ports(compose: Compose, write: WriteFn) -> None:
    service_port, extra_port = free_port(), free_port()
    write("compose.yaml", f"""
        services:
          db:
            image: busybox
            init: true
            command: sleep 1000
          srv:
            image: busybox
            command: httpd -f -p 80 -h /etc
            ports: ["{service_port}:80"]
            depends_on: [db]
        """)
    ran = compose("run", "--rm", "-T", "--no-deps", "--entrypoint", "echo", "srv", "from", "entrypoint")
    assert ran.stdout == "from entrypoint\n"
    assert names(compose) == set(), "--no-deps started the dependency, or --rm left the container"
    plain = compose("run", "-d", "srv").stdout.strip()
    assert "myapp-db-1" in names(compose)  # without --no-deps the dependency is started first
    inspected = compose.engine.client.get(f"/containers/{plain}/json")
    assert not inspected["HostConfig"]["PortBindings"]  # run leaves the service's ports alone by default
    compose.engine.client.delete(f"/containers/{plain}", params={"force": "1"})
    mapped = compose("run", "-d", "-p", f"{extra_port}:80", "srv").stdout.strip()
    assert fetch(f"http://127.0.0.1:{extra_port}/hostname").strip() == \
        compose.engine.client.get(f"/containers/{mapped}/json")["Id"][:12]
    compose.engine.client.delete(f"/containers/{mapped}", params={"force": "1"})
    compose("run", "-d", "--service-ports", "srv")
    assert fetch(f"http://127.0.0.1:{service_port}/passwd").startswith("root:")
    compose("down", "-t", "0")
    assert names(compose) == set()


def test_up_abort_on_container_exit_and_wait_timeout(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          server:
            image: busybox
            init: true
            command: sleep 1000
          job:
            image: busybox
            command: sh -c 'sleep 0.5; exit 4'
        """)
    aborted = compose("up", "--abort-on-container-exit", "--no-color", check=False)
    assert aborted.returncode == 4, aborted.stderr  # the code of the container that ended it all, as compose
    assert "Aborting on container exit..." in aborted.stdout
    states = {c["Labels"]["com.docker.compose.service"]: c["State"] for c in compose.containers("myapp")}
    assert states == {"server": "exited", "job": "exited"}
    compose("down")
    write("compose.yaml", """
        services:
          never:
            image: busybox
            init: true
            command: sleep 1000
            healthcheck: {test: ["CMD", "false"], interval: 1s, retries: 1000}
        """)
    started = time.monotonic()
    waited = compose("up", "-d", "--wait", "--wait-timeout", "2", check=False)
    assert waited.returncode == 1 and "never" in waited.stderr and "timeout" in waited.stderr, waited.stderr
    assert time.monotonic() - started < 30
    assert [c["State"] for c in compose.containers("myapp")] == ["running"]  # left for inspection, as compose
    compose("down", "-t", "0")


def test_down_keeps_orphans_and_their_network_unless_asked(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          a: {image: busybox, init: true, command: sleep 1000}
          b: {image: busybox, init: true, command: sleep 1000}
        """)
    compose("up", "-d")
    write("compose.yaml", "services:\n  a: {image: busybox, init: true, command: sleep 1000}\n")
    kept = compose("down", "-t", "0")  # compose warns and leaves the network to the orphan; not an error
    assert "orphan containers (myapp-b-1)" in kept.stderr
    assert "Network myapp_default  Resource is still in use" in kept.stderr
    assert names(compose) == {"myapp-b-1"} and [n["Name"] for n in compose.networks("myapp")] == ["myapp_default"]
    compose("down", "--remove-orphans", "-t", "0")
    assert names(compose) == set() and compose.networks("myapp") == []

