"""The apps in examples/: up, check from outside (published port, logs), down, and nothing is left."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.compose.conftest import Compose, free_port
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def fetch(url: str, *, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for(predicate: object, *, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def assert_nothing_left(compose: Compose, project: str, bridges: list[str]) -> None:
    assert compose.containers(project) == []
    assert compose.networks(project) == []
    assert compose.volumes(project) == []
    for bridge in bridges:
        assert not Path("/sys/class/net", bridge).exists(), f"bridge {bridge} left behind"


def bridges_of(compose: Compose, project: str) -> list[str]:
    return [f"br-{n['Id'][:12]}" for n in compose.networks(project)]


@pytest.fixture
def example(compose_engine: EngineProcess, request: pytest.FixtureRequest) -> Compose:
    return Compose(engine=compose_engine, directory=EXAMPLES / request.param)


@pytest.mark.parametrize("example", ["webapp"], indirect=True)
def test_webapp_up_reach_down(example: Compose) -> None:
    port = free_port()
    env = {"WEB_PORT": str(port)}
    up = example("up", "-d", "--wait", env=env)
    # db is healthy before api starts, api healthy before web is created
    err = up.stderr
    assert err.index("Container webapp-db-1  Healthy") < err.index("Container webapp-api-1  Creating")
    assert err.index("Container webapp-api-1  Healthy") < err.index("Container webapp-web-1  Creating")
    ps = [json.loads(line) for line in example("ps", "--format", "json", env=env).stdout.splitlines()]
    assert {(c["Service"], c["State"]) for c in ps} == {("db", "running"), ("api", "running"), ("web", "running")}
    assert fetch(f"http://127.0.0.1:{port}/").startswith("<!doctype html>")
    assert json.loads(fetch(f"http://127.0.0.1:{port}/cgi-bin/api")) == {"items": ["apple", "banana", "cherry"]}
    assert example("port", "web", "80", env=env).stdout.strip().endswith(f":{port}")
    bridges = bridges_of(example, "webapp")
    assert bridges
    down = example("down", "-v", env=env)
    assert "Volume webapp_dbdata  Removed" in down.stderr
    assert_nothing_left(example, "webapp", bridges)


@pytest.mark.parametrize("example", ["pipeline"], indirect=True)
def test_pipeline_init_job_then_producer_and_consumer(example: Compose) -> None:
    example("up", "-d")
    wait_for(lambda: "consumed item 3" in example("logs", "--no-color", "consumer").stdout)
    ps = {c["Service"]: c for c in map(json.loads, example("ps", "-a", "--format", "json").stdout.splitlines())}
    assert ps["init"]["State"] == "exited" and ps["init"]["ExitCode"] == 0
    assert ps["producer"]["State"] == ps["consumer"]["State"] == "running"
    assert "init-1  | queue ready" in example("logs", "--no-color", "init").stdout
    bridges = bridges_of(example, "pipeline")
    example("down", "-v", "-t", "1")
    assert_nothing_left(example, "pipeline", bridges)


@pytest.mark.parametrize("example", ["profiles"], indirect=True)
def test_profiles_and_override(example: Compose) -> None:
    port = free_port()
    env = {"WEB_PORT": str(port)}
    example("up", "-d", env=env)
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello from compose.override.yaml"
    assert example("ps", "--services", env=env).stdout.split() == ["web"]
    example("--profile", "debug", "up", "-d", env=env)
    assert sorted(example("--profile", "debug", "ps", "--services", env=env).stdout.split()) == ["debug", "web"]
    wait_for(lambda: "hello from compose.override.yaml" in example("--profile", "debug", "logs", "debug",
                                                                   env=env).stdout)
    bridges = bridges_of(example, "profiles")
    example("--profile", "debug", "down", env=env)
    assert_nothing_left(example, "profiles", bridges)
