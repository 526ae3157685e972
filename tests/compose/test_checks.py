from __future__ import annotations

import pytest

from compose.loader.errors import LoadError
from tests.compose.conftest import LoadFn, WriteFn


def _error(write: WriteFn, load: LoadFn, text: str) -> str:
    write("compose.yaml", text)
    with pytest.raises(LoadError) as info:
        load()
    return str(info.value)


def test_unknown_dependency(write: WriteFn, load: LoadFn) -> None:
    assert _error(write, load, "services:\n  web:\n    image: x\n    depends_on: [db]\n") == (
        'compose.yaml: services.web.depends_on.db: service "db" is not defined')


def test_dependency_cycle(write: WriteFn, load: LoadFn) -> None:
    text = """
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, depends_on: [c]}
          c: {image: x, depends_on: [a]}
    """
    assert _error(write, load, text) == (
        "compose.yaml: services.a.depends_on: dependency cycle detected: a -> b -> c -> a")


@pytest.mark.parametrize(("first", "second", "clash"), [
    ("8080:80", "8080:81", "host port 8080/tcp"),
    ("127.0.0.1:8080:80", "8080:81", "host port 8080/tcp"),
    ("127.0.0.1:8080:80", "127.0.0.1:8080:81", "host port 127.0.0.1:8080/tcp"),
    ("8000-8010:80", "8005:80", "host port 8005/tcp"),
])
def test_host_port_clash(write: WriteFn, load: LoadFn, first: str, second: str, clash: str) -> None:
    text = f"services:\n  a:\n    image: x\n    ports: ['{first}']\n  b:\n    image: x\n    ports: ['{second}']\n"
    expected = f'compose.yaml: services.b.ports[0]: {clash} is already published by service "a"'
    assert _error(write, load, text) == expected


@pytest.mark.parametrize(("first", "second"), [
    ("8080:80", "8080:80/udp"), ("127.0.0.1:8080:80", "127.0.0.2:8080:80"), ("8080:80", "8081:80"), ("80", "80"),
])
def test_no_port_clash(write: WriteFn, load: LoadFn, first: str, second: str) -> None:
    write("compose.yaml", f"services:\n  a:\n    image: x\n    ports: ['{first}']\n  b:\n    image: x\n"
                          f"    ports: ['{second}']\n")
    assert len(load().services) == 2


def test_undefined_references_all_reported(write: WriteFn, load: LoadFn) -> None:
    text = """
        services:
          web:
            image: x
            networks: [front]
            volumes: ["data:/data"]
            secrets: [key]
            configs: [conf]
          nothing: {}
    """
    assert _error(write, load, text).splitlines() == [
        "compose.yaml: services.nothing: has neither an image nor a build context specified",
        'compose.yaml: services.web.networks.front: network "front" is not defined',
        'compose.yaml: services.web.volumes[0]: volume "data" is not defined',
        'compose.yaml: services.web.secrets[0]: secret "key" is not defined',
        'compose.yaml: services.web.configs[0]: config "conf" is not defined',
    ]


def test_location_is_the_file_that_defined_the_service(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n")
    write("more.yaml", "services:\n  api:\n    image: x\n    depends_on: [ghost]\n")
    with pytest.raises(LoadError) as info:
        load(files=("compose.yaml", "more.yaml"))
    assert str(info.value) == 'more.yaml: services.api.depends_on.ghost: service "ghost" is not defined'


def test_container_name_with_replicas(write: WriteFn, load: LoadFn) -> None:
    assert _error(write, load, "services:\n  web:\n    image: x\n    container_name: w1\n    scale: 2\n") == (
        "compose.yaml: services.web.container_name: can't be set when the service has more than one replica "
        "(names must be unique)")


def test_optional_unknown_dependency_is_dropped_with_a_warning(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    depends_on:\n      db: {required: false}\n")
    project = load()
    assert project.services["web"].depends_on == {}
    assert "depends_on" not in project.raw["services"]["web"]
    assert project.warnings == ('service "web": optional dependency "db" is not defined; ignored',)
