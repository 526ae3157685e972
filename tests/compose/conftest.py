from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from compose.loader import LoadOptions, load_project
from compose.model import Project

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
