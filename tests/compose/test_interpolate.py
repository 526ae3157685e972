from __future__ import annotations

import pytest

from compose.loader.errors import LoadError
from compose.loader.interpolate import TemplateError, substitute
from tests.compose.conftest import LoadFn, WriteFn

ENV = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$SET", "value"),
        ("${SET}", "value"),
        ("a-${SET}-b", "a-value-b"),
        ("$SET.txt", "value.txt"),
        ("${UNSET}", ""),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a ${SET} b}", "a value b"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost: $$5", "cost: $5"),
        ("${SET:-${UNSET:?never evaluated}}", "value"),
    ],
)
def test_substitute(template: str, expected: str) -> None:
    assert substitute(template, ENV.get) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?please set it}", "required variable UNSET is missing a value: please set it"),
        ("${EMPTY:?}", "required variable EMPTY is missing a value"),
        ("${UNSET?must}", "required variable UNSET is missing a value: must"),
        ("${UNSET", "invalid interpolation format"),
        ("$(pwd)", "invalid interpolation format"),
        ("${}", "invalid interpolation format"),
    ],
)
def test_substitute_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        substitute(template, ENV.get)
    assert str(info.value) == message


def test_empty_is_set_for_the_non_colon_question_form() -> None:
    assert substitute("${EMPTY?err}", ENV.get) == ""


def test_required_variable_error_names_file_and_path(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          web:
            image: "nginx:${TAG:?set TAG}"
    """)
    with pytest.raises(LoadError) as info:
        load()
    assert str(info.value) == "compose.yaml: services.web.image: required variable TAG is missing a value: set TAG"


def test_invalid_format_error_names_path_and_suggests_escape(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          web:
            image: busybox
            command: ["sh", "-c", "echo $(date)"]
    """)
    with pytest.raises(LoadError) as info:
        load()
    assert str(info.value).startswith("compose.yaml: services.web.command[2]: invalid interpolation format")
    assert "$$" in str(info.value)


def test_all_interpolation_errors_reported_together(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          a: {image: "${A:?}"}
          b: {image: "${B:?}"}
    """)
    with pytest.raises(LoadError) as info:
        load()
    assert [i.path for i in info.value.issues] == ["services.a.image", "services.b.image"]


def test_shell_wins_over_dotenv(write: WriteFn, load: LoadFn) -> None:
    write(".env", "TAG=from-dotenv\nOTHER=dotenv-only\n")
    write("compose.yaml", """
        services:
          web:
            image: "nginx:${TAG}"
            environment:
              OTHER: $OTHER
    """)
    project = load(environ={"TAG": "from-shell"})
    assert project.services["web"].image == "nginx:from-shell"
    assert project.services["web"].environment == {"OTHER": "dotenv-only"}


def test_env_file_option_replaces_dotenv(write: WriteFn, load: LoadFn) -> None:
    write(".env", "TAG=dotenv\n")
    write("prod.env", "TAG=prod\n")
    write("more.env", "EXTRA=1\n")
    write("compose.yaml", "services:\n  web:\n    image: app:${TAG:-none}${EXTRA:-}\n")
    assert load(env_files=("prod.env", "more.env")).services["web"].image == "app:prod1"


def test_keys_are_not_interpolated_and_values_are_typed(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          web:
            image: busybox
            read_only: ${RO}
            scale: ${N}
            labels:
              $$notakey: x
    """)
    project = load(environ={"RO": "true", "N": "3"})
    web = project.services["web"]
    assert web.raw["read_only"] is True
    assert web.scale == 3
    assert web.labels == {"$$notakey": "x"}


def test_unset_variable_warns(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx:${NOPE}latest\n")
    project = load()
    assert project.services["web"].image == "nginx:latest"
    assert project.warnings == ('The "NOPE" variable is not set. Defaulting to a blank string.',)


def test_no_interpolation_keeps_templates(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx:${TAG:?x}\n")
    assert load(interpolate=False).services["web"].image == "nginx:${TAG:?x}"
