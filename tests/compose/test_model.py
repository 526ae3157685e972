from __future__ import annotations

import dataclasses

import pytest

from compose.model import config_hash
from tests.compose.conftest import LoadFn, WriteFn


def _hash(write: WriteFn, load: LoadFn, text: str, service: str = "web") -> str:
    write("compose.yaml", text)
    return config_hash(load().services[service])


def test_hash_is_stable_sha256(write: WriteFn, load: LoadFn) -> None:
    first = _hash(write, load, "services:\n  web:\n    image: nginx\n    environment: {A: 1, B: 2}\n")
    second = _hash(write, load, "services:\n  web:\n    environment: [B=2, A=1]\n    image: nginx\n")
    assert first == second
    assert len(first) == 64 and int(first, 16) >= 0


def test_hash_changes_with_the_container_config(write: WriteFn, load: LoadFn) -> None:
    base = _hash(write, load, "services:\n  web:\n    image: nginx\n")
    assert _hash(write, load, "services:\n  web:\n    image: nginx:2\n") != base
    assert _hash(write, load, "services:\n  web:\n    image: nginx\n    ports: ['80']\n") != base


def test_hash_ignores_scale_build_and_dependencies(write: WriteFn, load: LoadFn) -> None:
    base = _hash(write, load, "services:\n  web:\n    image: nginx\n  db:\n    image: pg\n")
    other = _hash(write, load, "services:\n  web:\n    image: nginx\n    scale: 3\n    pull_policy: always\n"
                               "    depends_on: [db]\n    build: .\n  db:\n    image: pg\n")
    assert other == base


def test_model_is_frozen(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx\n    deploy: {replicas: 2}\n")
    project = load()
    assert project.services["web"].scale == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.services["web"].image = "other"  # type: ignore[misc]
