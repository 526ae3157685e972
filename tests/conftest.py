from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.engine import EngineProcess


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (privileged test)")
    for item in items:
        if "privileged" in item.keywords or "lab" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def engine() -> Iterator[EngineProcess]:
    """A fresh daemon on a fresh data root, for tests that need the store to themselves."""
    proc = EngineProcess()
    proc.start()
    try:
        yield proc
    finally:
        leaked = proc.close()
    assert not leaked, f"test leaked kernel objects: {leaked}"


@pytest.fixture(scope="session")
def shared_engine() -> Iterator[EngineProcess]:
    """One daemon per xdist worker, for tests that only add and remove their own objects."""
    proc = EngineProcess(prefix="pns")
    proc.start()
    try:
        yield proc
    finally:
        leaked = proc.close()
    assert not leaked, f"tests leaked kernel objects: {leaked}"
