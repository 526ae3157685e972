from __future__ import annotations

import pytest

from compose.loader.errors import LoadError
from tests.compose.conftest import LoadFn, WriteFn

FILE = """
services:
  web: {image: web}
  debug: {image: busybox, profiles: [debug]}
  admin: {image: admin, profiles: [tools, debug], depends_on: [db]}
  db: {image: pg, profiles: [tools]}
"""


def test_services_with_profiles_are_off_by_default(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE)
    project = load()
    assert list(project.services) == ["web"]
    assert project.disabled_services == ("admin", "db", "debug")
    assert project.profiles == ("debug", "tools")


def test_profile_option(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE)
    assert sorted(load(profiles=("tools",)).services) == ["admin", "db", "web"]


def test_compose_profiles_variable(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE.replace("depends_on: [db]", "depends_on: []"))
    assert sorted(load(environ={"COMPOSE_PROFILES": "debug"}).services) == ["admin", "debug", "web"]


def test_star_enables_all(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE)
    assert len(load(profiles=("*",)).services) == 4


def test_named_service_is_enabled_with_its_dependencies(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE)
    assert sorted(load(services=("admin",)).services) == ["admin", "db", "web"]


def test_dependency_on_disabled_service(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE)
    with pytest.raises(LoadError) as info:
        load(profiles=("debug",))
    assert str(info.value) == ('compose.yaml: services.admin.depends_on.db: service "db" is disabled by its '
                               "profiles; enable one of them with --profile")


def test_optional_dependency_on_disabled_service_is_dropped(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE.replace("depends_on: [db]", "depends_on: {db: {required: false}}"))
    assert load(profiles=("debug",)).services["admin"].depends_on == {}


def test_unknown_targeted_service(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", FILE)
    with pytest.raises(LoadError) as info:
        load(services=("nope",))
    assert str(info.value) == 'no such service: "nope"'
