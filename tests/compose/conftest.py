from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compose.loader import LoadOptions, load_project
from compose.model import Project
from tests.support.engine import EngineProcess

WriteFn = Callable[[str, str], Path]
LoadFn = Callable[..., Project]


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "myapp"
    directory.mkdir()
    return directory


@pytest.fixture
def write(project_dir: Path) -> WriteFn:
    """Write a dedented file relative to the project directory and return its path."""

    def _write(name: str, text: str) -> Path:
        path = project_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def load(project_dir: Path) -> LoadFn:
    """Load the project from project_dir with a controlled environment (empty by default)."""

    def _load(*, environ: Mapping[str, str] | None = None, **options: Any) -> Project:
        return load_project(LoadOptions(cwd=options.pop("cwd", project_dir), environ=environ or {}, **options))

    return _load


# ---- a real engine for pycompose ----------------------------------------------------------------

PYCOMPOSE = str(Path(sys.executable).parent / "pycompose")


@dataclass
class Compose:
    """`pycompose` against one test daemon, in one project directory."""

    engine: EngineProcess
    directory: Path

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 env: Mapping[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([PYCOMPOSE, "--progress", "plain", *args], cwd=self.directory,
                                env={**self.engine.env, **(env or {})}, capture_output=True, text=True,
                                timeout=timeout, input=input if input is not None else "")
        if check and result.returncode != 0:
            raise AssertionError(f"pycompose {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def containers(self, project: str) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"com.docker.compose.project={project}"]})
        found: list[dict[str, Any]] = self.engine.client.get("/containers/json", params={"all": "1",
                                                                                          "filters": filters})
        return found

    def networks(self, project: str) -> list[dict[str, Any]]:
        return [n for n in self.engine.client.get("/networks") if n["Name"].startswith(f"{project}_")]

    def volumes(self, project: str) -> list[dict[str, Any]]:
        return [v for v in self.engine.client.get("/volumes")["Volumes"] or [] if v["Name"].startswith(f"{project}_")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def compose_engine(engine: EngineProcess) -> EngineProcess:
    """A fresh daemon with the busybox image."""
    engine.cli("image", "bootstrap", "busybox")
    return engine


@pytest.fixture
def compose(compose_engine: EngineProcess, project_dir: Path) -> Compose:
    return Compose(engine=compose_engine, directory=project_dir)
