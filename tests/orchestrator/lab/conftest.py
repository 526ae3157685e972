"""Lab fixtures: a throwaway lab per test, removed in teardown even when the test fails and then checked
for leftovers (tests/support/lab.py does the work; cluster tests elsewhere can use it the same way)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.lab import Lab
from tests.support.lab import LabSpot
from tests.support.lab import lab_spot as make_lab_spot


@pytest.fixture
def lab_spot() -> Iterator[LabSpot]:
    """A unique lab name, subnet and state root; the lab made there is removed after the test."""
    with make_lab_spot() as spot:
        yield spot


@pytest.fixture
def lab3(lab_spot: LabSpot) -> Lab:
    """Three lab hosts, h1..h3, each with its own engine."""
    return lab_spot.up(3)
