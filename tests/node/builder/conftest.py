from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.engine import EngineProcess


def ensure_busybox(proc: EngineProcess) -> None:
    if proc.cli("image", "inspect", "busybox", check=False).returncode != 0:
        proc.cli("image", "bootstrap", "busybox")


@pytest.fixture
def busybox_engine(shared_engine: EngineProcess) -> EngineProcess:
    """The worker's shared daemon, with a busybox image (bootstrapped once per worker)."""
    ensure_busybox(shared_engine)
    return shared_engine


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_context(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
