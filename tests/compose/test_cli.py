from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from compose.cli import main
from tests.compose.conftest import WriteFn

FILE = """
services:
  web:
    image: "nginx:${TAG:-latest}"
    ports: ["8080:80"]
    volumes: ["./html:/usr/share/nginx/html", "cache:/cache"]
    depends_on: [db]
  db:
    image: postgres
  tools:
    image: busybox
    profiles: [debug, ops]
volumes:
  cache: {}
"""


@pytest.fixture
def runner(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(project_dir)
    for name in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "TAG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_config_prints_normalised_yaml(runner: CliRunner, write: WriteFn, project_dir: Path) -> None:
    write("compose.yaml", FILE)
    result = runner.invoke(main, ["config"])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.output)
    assert document["name"] == "myapp"
    assert list(document["services"]) == ["db", "web"]
    web = document["services"]["web"]
    assert web["image"] == "nginx:latest"
    assert web["ports"] == [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]
    assert web["volumes"][0]["source"] == str(project_dir / "html")
    assert document["networks"] == {"default": {"name": "myapp_default"}}
    assert "    - mode: ingress\n" in result.output  # lists indented under their key, as compose prints


def test_config_json_and_global_options(runner: CliRunner, write: WriteFn) -> None:
    write("compose.yaml", FILE)
    write("prod.yaml", "services:\n  web:\n    image: nginx:${TAG}\n")
    write("prod.env", "TAG=prod\n")
    result = runner.invoke(main, ["-f", "compose.yaml", "-f", "prod.yaml", "-p", "shop", "--env-file", "prod.env",
                                  "--profile", "debug", "config", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["name"] == "shop"
    assert document["services"]["web"]["image"] == "nginx:prod"
    assert "tools" in document["services"]


@pytest.mark.parametrize(("flag", "expected"), [
    ("--services", "db\nweb\n"), ("--volumes", "cache\n"), ("--profiles", "debug\nops\n")])
def test_config_listings(runner: CliRunner, write: WriteFn, flag: str, expected: str) -> None:
    write("compose.yaml", FILE)
    result = runner.invoke(main, ["config", flag])
    assert (result.exit_code, result.output) == (0, expected)


def test_config_quiet(runner: CliRunner, write: WriteFn) -> None:
    write("compose.yaml", FILE)
    result = runner.invoke(main, ["config", "-q"])
    assert (result.exit_code, result.output) == (0, "")


def test_config_error_is_one_line_on_stderr(runner: CliRunner, write: WriteFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    ports: 80\n")
    result = runner.invoke(main, ["config"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: compose.yaml: services.web.ports: must be a list, not 80\n"


def test_project_directory_option(runner: CliRunner, write: WriteFn, project_dir: Path) -> None:
    write("deploy/compose.yaml", "services:\n  web:\n    image: x\n    build: .\n")
    (project_dir / "elsewhere").mkdir()
    result = runner.invoke(main, ["-f", "deploy/compose.yaml", "--project-directory", "elsewhere", "config"])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.output)
    assert document["name"] == "elsewhere"
    assert document["services"]["web"]["build"]["context"] == str(project_dir / "elsewhere")


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["version"])
    assert result.exit_code == 0
    assert result.output.startswith("pycompose version v")


def test_console_script(project_dir: Path, write: WriteFn) -> None:
    write("compose.yaml", FILE)
    script = Path(sys.executable).with_name("pycompose")
    if not script.exists():
        pytest.skip("pycompose console script not installed in this environment")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    done = subprocess.run([str(script), "config", "--services"], cwd=project_dir, capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "db\nweb\n")
    failed = subprocess.run([str(script), "-f", "missing.yaml", "config"], cwd=project_dir, capture_output=True,
                            text=True, env=env, timeout=60, check=False)
    assert failed.returncode == 1
    assert failed.stderr.strip().endswith("missing.yaml: no such file")


def test_config_for_named_services(runner: CliRunner, write: WriteFn) -> None:
    write("compose.yaml", FILE)
    result = runner.invoke(main, ["config", "tools", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.output)["services"]) == ["tools"]


def test_config_no_interpolate_and_warnings(runner: CliRunner, write: WriteFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx:${MISSING}\n")
    raw = runner.invoke(main, ["config", "--no-interpolate"])
    assert yaml.safe_load(raw.stdout)["services"]["web"]["image"] == "nginx:${MISSING}"
    warned = runner.invoke(main, ["config"])
    assert warned.stderr == 'WARN: The "MISSING" variable is not set. Defaulting to a blank string.\n'
