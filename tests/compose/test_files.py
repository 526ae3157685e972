from __future__ import annotations

from pathlib import Path

import pytest

from compose.loader.errors import LoadError
from compose.loader.files import normalize_project_name
from tests.compose.conftest import LoadFn, WriteFn

SIMPLE = "services:\n  web:\n    image: nginx\n"


@pytest.mark.parametrize("name", ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"])
def test_finds_each_file_name(name: str, write: WriteFn, load: LoadFn) -> None:
    write(name, SIMPLE)
    assert [p.name for p in load().config_files] == [name]


def test_prefers_compose_yaml(write: WriteFn, load: LoadFn) -> None:
    write("docker-compose.yml", "services:\n  old:\n    image: x\n")
    write("compose.yaml", SIMPLE)
    assert list(load().services) == ["web"]


def test_found_in_a_parent_directory(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    write("compose.yaml", SIMPLE)
    nested = project_dir / "src" / "deep"
    nested.mkdir(parents=True)
    project = load(cwd=nested)
    assert project.working_dir == project_dir
    assert project.name == "myapp"


@pytest.mark.parametrize("override", ["compose.override.yaml", "compose.override.yml"])
def test_override_picked_up_without_f(override: str, write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", SIMPLE)
    write(override, "services:\n  web:\n    image: nginx:override\n")
    assert load().services["web"].image == "nginx:override"


def test_override_ignored_with_f(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", SIMPLE)
    write("compose.override.yaml", "services:\n  web:\n    image: nginx:override\n")
    assert load(files=("compose.yaml",)).services["web"].image == "nginx"


def test_no_file_is_an_error(load: LoadFn) -> None:
    with pytest.raises(LoadError, match="no configuration file provided"):
        load()


def test_missing_f_file_is_an_error(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    with pytest.raises(LoadError) as info:
        load(files=("nope.yaml",))
    assert str(info.value) == f"{project_dir / 'nope.yaml'}: no such file"


def test_compose_file_variable(write: WriteFn, load: LoadFn) -> None:
    write("a.yaml", SIMPLE)
    write("b.yaml", "services:\n  web:\n    image: from-b\n")
    assert load(environ={"COMPOSE_FILE": "a.yaml:b.yaml"}).services["web"].image == "from-b"


def test_project_directory_option(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    write("conf/compose.yaml", "services:\n  web:\n    image: nginx\n    volumes: ['./data:/data']\n")
    write("other/.env", "")
    project = load(files=("conf/compose.yaml",), project_directory="other")
    assert project.working_dir == project_dir / "other"
    assert project.name == "other"
    assert project.services["web"].volumes[0].source == str(project_dir / "other" / "data")


def test_project_directory_holds_dotenv(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    write("other/.env", "TAG=from-other\n")
    write("compose.yaml", "services:\n  web:\n    image: nginx:${TAG}\n")
    assert load(project_directory="other", files=("compose.yaml",)).services["web"].image == "nginx:from-other"


class TestProjectName:
    def test_option_wins(self, write: WriteFn, load: LoadFn) -> None:
        write("compose.yaml", "name: declared\n" + SIMPLE)
        assert load(project_name="cli", environ={"COMPOSE_PROJECT_NAME": "env"}).name == "cli"

    def test_environment_before_declared(self, write: WriteFn, load: LoadFn) -> None:
        write("compose.yaml", "name: declared\n" + SIMPLE)
        assert load(environ={"COMPOSE_PROJECT_NAME": "env"}).name == "env"

    def test_environment_from_dotenv(self, write: WriteFn, load: LoadFn) -> None:
        write(".env", "COMPOSE_PROJECT_NAME=dotenv\n")
        write("compose.yaml", SIMPLE)
        assert load().name == "dotenv"

    def test_declared_before_directory(self, write: WriteFn, load: LoadFn) -> None:
        write("compose.yaml", "name: declared\n" + SIMPLE)
        assert load().name == "declared"
        assert load().raw["name"] == "declared"

    def test_directory_name_is_normalised(self, tmp_path: Path, load: LoadFn) -> None:
        directory = tmp_path / "_My.Cool App!"
        directory.mkdir()
        (directory / "compose.yaml").write_text(SIMPLE)
        assert load(cwd=directory).name == "mycoolapp"

    def test_invalid_explicit_name(self, write: WriteFn, load: LoadFn) -> None:
        write("compose.yaml", "name: Bad_Name\n" + SIMPLE)
        with pytest.raises(LoadError) as info:
            load()
        assert str(info.value).startswith("compose.yaml: name: invalid project name 'Bad_Name'")

    @pytest.mark.parametrize(("raw", "expected"), [("My-App", "my-app"), ("__x y", "xy"), ("a.b_c", "ab_c")])
    def test_normalize(self, raw: str, expected: str) -> None:
        assert normalize_project_name(raw) == expected
