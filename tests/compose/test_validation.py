from __future__ import annotations

import json
from pathlib import Path

import pytest

from compose.loader.errors import ConfigValidationError, LoadError
from compose.loader.schema import load_schema
from tests.compose.conftest import LoadFn, WriteFn


def _errors(write: WriteFn, load: LoadFn, text: str) -> list[str]:
    write("compose.yaml", text)
    with pytest.raises(LoadError) as info:
        load()
    return str(info.value).splitlines()


def test_all_schema_errors_at_once_with_file_and_path(write: WriteFn, load: LoadFn) -> None:
    lines = _errors(write, load, """
        servces: {}
        services:
          web:
            image: 5
            ports: [{published: 80}, true]
            restart: sometimes
            imagee: nginx
            healthcheck: {interval: soon}
    """)
    assert lines == [
        "compose.yaml: additional properties 'servces' not allowed",
        "compose.yaml: services.web: additional properties 'imagee' not allowed",
        "compose.yaml: services.web.healthcheck.interval: 'soon' has an invalid format",
        "compose.yaml: services.web.image: must be a string, not 5",
        "compose.yaml: services.web.ports[0]: 'target' is required",
        "compose.yaml: services.web.ports[1]: must be a number or a string or a mapping, not True",
        "compose.yaml: services.web.restart: 'sometimes' has an invalid format",
    ]


def test_validation_error_type(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    privileged: sure\n")
    with pytest.raises(ConfigValidationError) as info:
        load()
    assert [(i.file, i.path) for i in info.value.issues] == [("compose.yaml", "services.web.privileged")]
    assert info.value.issues[0].message == "must be a boolean, not 'sure'"


def test_enum_error(write: WriteFn, load: LoadFn) -> None:
    lines = _errors(write, load, "services:\n  web:\n    image: x\n    depends_on:\n      db: {condition: ready}\n")
    assert lines == ["compose.yaml: services.web.depends_on.db.condition: must be one of 'service_started', "
                     "'service_healthy', 'service_completed_successfully', not 'ready'"]


def test_error_names_the_file_it_is_in(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n")
    write("extra.yaml", "services:\n  web:\n    tty: 1\n")
    with pytest.raises(LoadError) as info:
        load(files=("compose.yaml", "extra.yaml"))
    assert str(info.value) == "extra.yaml: services.web.tty: must be a boolean, not 1"


def test_extensions_allowed_everywhere(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        x-top: 1
        services:
          web:
            image: x
            x-svc: {any: thing}
        networks:
          front:
            x-net: 1
    """)
    assert load().raw["services"]["web"]["x-svc"] == {"any": "thing"}


def test_invalid_yaml_gives_line_and_column(write: WriteFn, load: LoadFn) -> None:
    lines = _errors(write, load, "services:\n  web:\n    image: nginx\n   bad: [\n")
    assert len(lines) == 1
    assert lines[0].startswith("compose.yaml: line 4, column 4: ")


def test_top_level_must_be_a_mapping(write: WriteFn, load: LoadFn) -> None:
    assert _errors(write, load, "- a\n- b\n") == ["compose.yaml: top-level object must be a mapping"]


def test_yaml_12_booleans(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    environment:\n      A: yes\n      B: true\n")
    assert load().services["web"].environment == {"A": "yes", "B": "true"}


def test_schema_is_our_own_file() -> None:
    path = Path(__file__).resolve().parents[2] / "compose" / "schema" / "compose-spec.json"
    assert json.loads(path.read_text()) == load_schema()
    assert load_schema()["additionalProperties"] is False


def test_duplicate_key_is_an_error_with_line(write: WriteFn, load: LoadFn) -> None:
    lines = _errors(write, load, "services:\n  web:\n    image: a\n    image: b\n")
    assert lines == ["compose.yaml: line 4, column 5: mapping key 'image' already defined at line 3"]


def test_merge_keys_are_not_duplicates(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        x-base: &base {image: a, restart: always}
        x-more: &more {<<: *base, image: b}
        services:
          web:
            <<: *more
            image: c
          api:
            <<: [*base]
            restart: "no"
    """)
    project = load()
    assert (project.services["web"].image, project.services["web"].restart) == ("c", "always")
    assert (project.services["api"].image, project.services["api"].restart) == ("a", "no")


def test_version_is_obsolete(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "version: '3.8'\nservices:\n  web:\n    image: x\n")
    project = load()
    assert project.warnings == ("compose.yaml: the attribute `version` is obsolete, it will be ignored",)
    assert "version" not in project.raw
