"""pycompose's commands against a real engine: convergence, lifecycle, one-off containers, bad input."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.compose.conftest import Compose, WriteFn

pytestmark = pytest.mark.privileged

TWO = """
services:
  web:
    image: busybox
    init: true
    command: sleep 1000
    environment: {COLOUR: blue}
  worker:
    image: busybox
    init: true
    command: sleep 1000
    depends_on: [web]
volumes:
  data: {}
"""


def ids(compose: Compose, project: str) -> dict[str, str]:
    return {c["Names"][0].lstrip("/"): c["Id"] for c in compose.containers(project)}


def test_re_up_recreates_exactly_the_edited_service(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", TWO)
    compose("up", "-d")
    before = ids(compose, "myapp")
    assert set(before) == {"myapp-web-1", "myapp-worker-1"}
    again = compose("up", "-d")
    assert ids(compose, "myapp") == before
    assert "Container myapp-web-1  Running" in again.stderr
    write("compose.yaml", TWO.replace("COLOUR: blue", "COLOUR: red"))
    result = compose("up", "-d")
    after = ids(compose, "myapp")
    assert after["myapp-web-1"] != before["myapp-web-1"]
    assert after["myapp-worker-1"] == before["myapp-worker-1"]  # depends_on without restart: true stays
    assert "Container myapp-web-1  Recreated" in result.stderr
    assert "myapp-worker-1  Recreate" not in result.stderr
    env = compose.engine.client.get(f"/containers/{after['myapp-web-1']}/json")["Config"]["Env"]
    assert "COLOUR=red" in env
    compose("up", "-d", "--no-recreate")
    assert ids(compose, "myapp") == after
    compose("up", "-d", "--force-recreate", "worker", "--no-deps")
    forced = ids(compose, "myapp")
    assert forced["myapp-web-1"] == after["myapp-web-1"] and forced["myapp-worker-1"] != after["myapp-worker-1"]
    compose("down", "-t", "0")
    assert compose.containers("myapp") == []


def test_down_v_removes_only_its_own_project(compose: Compose, write: WriteFn, project_dir: Path) -> None:
    write("compose.yaml", TWO.replace("command: sleep 1000\n    environment", "command: sleep 1000\n"
                                      "    volumes: [data:/data]\n    environment"))
    compose("-p", "one", "up", "-d")
    compose("-p", "two", "up", "-d")
    assert {v["Name"] for v in compose.volumes("one") + compose.volumes("two")} == {"one_data", "two_data"}
    compose("-p", "one", "down", "-v", "-t", "0")
    assert compose.containers("one") == [] and compose.networks("one") == [] and compose.volumes("one") == []
    assert len(compose.containers("two")) == 2
    assert [n["Name"] for n in compose.networks("two")] == ["two_default"]
    assert [v["Name"] for v in compose.volumes("two")] == ["two_data"]
    ls = json.loads(compose("ls", "--format", "json").stdout)
    assert [p["Name"] for p in ls] == ["two"]
    compose("-p", "two", "down", "-v", "-t", "0")
    assert compose.containers("two") == [] and compose.volumes("two") == []


def test_scale_and_orphans(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", TWO)
    compose("up", "-d", "--scale", "worker=3")
    assert sorted(ids(compose, "myapp")) == ["myapp-web-1", "myapp-worker-1", "myapp-worker-2", "myapp-worker-3"]
    compose("up", "-d", "--scale", "worker=1")
    assert sorted(ids(compose, "myapp")) == ["myapp-web-1", "myapp-worker-1"]
    write("compose.yaml", TWO.replace("  worker:", "  other:"))
    warned = compose("up", "-d")
    assert "orphan containers (myapp-worker-1)" in warned.stderr
    assert "myapp-worker-1" in ids(compose, "myapp")
    compose("up", "-d", "--remove-orphans")
    assert sorted(ids(compose, "myapp")) == ["myapp-other-1", "myapp-web-1"]
    compose("down", "-t", "0")


def test_lifecycle_commands(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", TWO)
    compose("create")
    states = {c["Names"][0].lstrip("/"): c["State"] for c in compose.containers("myapp")}
    assert states == {"myapp-web-1": "created", "myapp-worker-1": "created"}
    compose("start")
    assert compose("ps", "-q").stdout.split().__len__() == 2
    compose("pause", "web")
    assert "Paused" in compose("ps", "web").stdout
    compose("unpause", "web")
    compose("stop", "-t", "1", "worker")
    assert compose("ps", "--services").stdout.split() == ["web"]
    assert "Exited" in compose("ps", "-a", "worker").stdout
    compose("restart", "-t", "1")
    assert sorted(compose("ps", "--services").stdout.split()) == ["web", "worker"]
    top = compose("top", "web").stdout
    assert "myapp-web-1" in top and "sleep 1000" in top
    compose("kill", "worker")
    assert compose("ps", "--services").stdout.split() == ["web"]
    compose("rm", "-f", "worker")
    assert sorted(ids(compose, "myapp")) == ["myapp-web-1"]
    images = compose("images").stdout
    assert "busybox" in images and "myapp-web-1" in images
    compose("down", "-t", "0")


def test_exec_and_run(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", TWO.replace("volumes:\n", "  tool:\n    image: busybox\n    command: echo tool-default\n"
                                      "    environment: {FROM_FILE: 'yes'}\n    depends_on: [web]\nvolumes:\n"))
    compose("up", "-d", "web", "worker")
    result = compose("exec", "-T", "-e", "EXTRA=1", "-w", "/tmp", "web", "sh", "-c", "echo $COLOUR $EXTRA $(pwd)")
    assert result.stdout.strip() == "blue 1 /tmp"
    failed = compose("exec", "-T", "web", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    piped = compose("exec", "-T", "web", "cat", input="from stdin\n")
    assert piped.stdout == "from stdin\n"
    ran = compose("run", "--rm", "-e", "X=42", "tool", "sh", "-c", "echo run $X $FROM_FILE; exit 3", check=False)
    assert ran.returncode == 3
    assert "run 42 yes" in ran.stdout
    assert not [c for c in compose.containers("myapp") if c["Labels"]["com.docker.compose.oneoff"] == "True"]
    kept = compose("run", "-d", "tool")
    name = kept.stdout.strip()
    assert name.startswith("myapp-tool-run-")
    assert "run" not in "".join(c["Names"][0] for c in compose.containers("myapp")
                                if c["Labels"]["com.docker.compose.oneoff"] == "False")
    compose("down", "-t", "0")
    assert compose.containers("myapp") == []


def test_attached_up_exits_with_the_code_of_the_named_service(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          server:
            image: busybox
            init: true
            command: sleep 1000
          job:
            image: busybox
            command: sh -c 'echo working; sleep 0.5; exit 5'
            depends_on: [server]
        """)
    started = time.monotonic()
    result = compose("up", "--exit-code-from", "job", "--no-color", check=False)
    assert result.returncode == 5, result.stderr
    assert re.search(r"^job-1 +\| working$", result.stdout, re.MULTILINE)  # padded to server-1's width
    assert "job-1 exited with code 5" in result.stdout
    assert time.monotonic() - started < 60
    states = {c["Labels"]["com.docker.compose.service"]: c["State"] for c in compose.containers("myapp")}
    assert states == {"server": "exited", "job": "exited"}
    logs = compose("logs", "--no-log-prefix", "job").stdout
    assert logs.strip() == "working"
    compose("down")


def test_failed_dependency_stops_up_and_down_cleans_up(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", """
        services:
          migrate:
            image: busybox
            command: sh -c 'exit 2'
          app:
            image: busybox
            command: sleep 1000
            depends_on:
              migrate: {condition: service_completed_successfully}
        """)
    result = compose("up", "-d", check=False)
    assert result.returncode != 0
    assert "service migrate didn't complete successfully: exit 2" in result.stderr
    names = ids(compose, "myapp")
    assert sorted(names) == ["myapp-migrate-1"]  # app was never created; migrate stays for inspection
    compose("down")
    assert compose.containers("myapp") == [] and compose.networks("myapp") == []


@pytest.mark.parametrize(("text", "args", "message"), [
    (TWO, ("up", "-d", "nosuch"), "no such service"),
    ("services:\n  web:\n    image: busybox\n    ports: [\n", ("up", "-d"), "compose.yaml"),
    ("services:\n  web:\n    image: busybox\n    depends_on: [ghost]\n", ("up", "-d"), "ghost"),
    ("services:\n  web:\n    image: busybox\n    depends_on: [db]\n  db:\n    image: busybox\n    depends_on: [web]\n",
     ("up", "-d"), "cycle"),
    ("services:\n  web:\n    image: nosuchimage:1\n  other:\n    image: busybox\n", ("up", "-d"), "nosuchimage:1"),
    ("services:\n  web:\n    image: busybox\n    pull_policy: always\n", ("up", "-d"), "pull_policy always"),
    ("services:\n  web:\n    image: busybox\n    environment: {P: '${DB_PASSWORD:?set it}'}\n", ("up", "-d"),
     "set it"),
    ("services:\n  web:\n    image: busybox\n    colour: red\n", ("up", "-d"),
     "compose.yaml: services.web: additional properties 'colour' not allowed"),
    ("services:\n  web:\n    image: busybox\n    scale: lots\n", ("up", "-d"),
     "compose.yaml: services.web.scale: must be an integer"),
    ("services:\n  a: {image: busybox, ports: ['18555:80']}\n  b: {image: busybox, ports: ['18555:81']}\n",
     ("up", "-d"), 'services.b.ports[0]: host port 18555/tcp is already published by service "a"'),
])
def test_bad_input_creates_nothing(compose: Compose, write: WriteFn, text: str, args: tuple[str, ...],
                                   message: str) -> None:
    write("compose.yaml", text)
    result = compose(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert compose.containers("myapp") == [] and compose.networks("myapp") == [] and compose.volumes("myapp") == []


def test_include_cycle_creates_nothing(compose: Compose, write: WriteFn) -> None:
    write("compose.yaml", "include: [other.yaml]\nservices:\n  a: {image: busybox}\n")
    write("other.yaml", "include: [compose.yaml]\nservices:\n  b: {image: busybox}\n")
    result = compose("up", "-d", check=False)
    assert result.returncode == 1
    assert "include cycle detected: compose.yaml -> other.yaml -> compose.yaml" in result.stderr
    assert compose.containers("myapp") == [] and compose.networks("myapp") == []


def test_build_then_up_build_picks_up_changes(compose: Compose, write: WriteFn) -> None:
    write("app/Dockerfile",
          'FROM busybox\nARG GREETING=hi\nRUN echo "$GREETING" > /greeting\nCMD ["cat", "/greeting"]\n')
    write("compose.yaml", "services:\n  app:\n    build: {context: ./app, args: {GREETING: one}}\n")
    first = compose("up", "--no-color")  # the image is missing: up builds it
    assert re.search(r"^app-1 +\| one$", first.stdout, re.MULTILINE), first.stdout
    write("compose.yaml", "services:\n  app:\n    build: {context: ./app, args: {GREETING: two}}\n")
    compose("build")
    second = compose("up", "--no-color", "--force-recreate")
    assert re.search(r"^app-1 +\| two$", second.stdout, re.MULTILINE), second.stdout
    write("app/Dockerfile", 'FROM busybox\nRUN echo three > /greeting\nCMD ["cat", "/greeting"]\n')
    third = compose("up", "--no-color", "--build")
    assert re.search(r"^app-1 +\| three$", third.stdout, re.MULTILINE), third.stdout
    assert "myapp-app" in compose("images").stdout
    compose("down", "--rmi", "local")
    tags = [t for image in compose.engine.client.get("/images/json") for t in image.get("RepoTags") or []]
    assert not [t for t in tags if t.startswith("myapp-app")]
    assert compose("up", "--no-build", check=False).stderr.count("--no-build") == 1


def test_a_project_is_found_again_from_its_containers(compose: Compose, write: WriteFn, tmp_path: Path) -> None:
    write("compose.yaml", TWO)
    compose("up", "-d")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    away = Compose(engine=compose.engine, directory=elsewhere)
    assert sorted(away("-p", "myapp", "ps", "--services").stdout.split()) == ["web", "worker"]
    assert "no configuration file provided" in away("ps", check=False).stderr
    away("-p", "myapp", "down", "-t", "0")
    assert compose.containers("myapp") == [] and compose.networks("myapp") == []


def test_ctrl_c_in_attached_up_stops_everything(compose: Compose, write: WriteFn) -> None:
    import signal
    import subprocess

    from tests.compose.conftest import PYCOMPOSE

    write("compose.yaml", TWO)
    proc = subprocess.Popen([PYCOMPOSE, "--progress", "plain", "up", "--no-color"], cwd=compose.directory,
                            env=compose.engine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while [c["State"] for c in compose.containers("myapp")] != ["running", "running"]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        time.sleep(1)  # past the start: now following the logs
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Gracefully stopping..." in out
    assert "Container myapp-web-1  Stopped" in err
    assert {c["State"] for c in compose.containers("myapp")} == {"exited"}
    compose("down")
