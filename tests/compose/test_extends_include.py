from __future__ import annotations

from pathlib import Path

import pytest

from compose.loader.errors import LoadError
from tests.compose.conftest import LoadFn, WriteFn


def test_extends_in_same_file(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          base:
            image: app
            environment: {A: "1", B: "1"}
            expose: ["8000"]
          web:
            extends: base
            environment: {B: "2"}
            expose: ["9000"]
    """)
    web = load().raw["services"]["web"]
    assert web["image"] == "app"
    assert web["environment"] == {"A": "1", "B": "2"}
    assert web["expose"] == ["8000", "9000"]
    assert "extends" not in web


def test_extends_chain_and_other_file_paths(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    write("common/base.yaml", """
        services:
          root:
            image: app
            build: ./ctx
            env_file: ./common.env
            volumes: ["./data:/data"]
          mid:
            extends: root
            labels: {tier: mid}
    """)
    write("common/common.env", "FROM_FILE=1\n")
    write("compose.yaml", """
        services:
          web:
            extends:
              file: common/base.yaml
              service: mid
            volumes: ["./local:/local"]
    """)
    web = load().services["web"]
    assert web.labels == {"tier": "mid"}
    assert web.build is not None and web.build.context == str(project_dir / "common" / "ctx")
    assert [v.source for v in web.volumes] == [str(project_dir / "common" / "data"), str(project_dir / "local")]
    assert web.environment == {"FROM_FILE": "1"}


def test_extends_unknown_service(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    extends: nope\n")
    with pytest.raises(LoadError) as info:
        load()
    assert str(info.value) == "compose.yaml: services.web.extends: service 'nope' not found in compose.yaml"


def test_extends_cycle(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  a:\n    extends: b\n  b:\n    extends: a\n")
    with pytest.raises(LoadError, match="circular reference"):
        load()


def test_include_imports_resources_with_own_directory(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    write("db/compose.yaml", """
        services:
          db:
            image: "postgres:${PG:-15}"
            volumes: ["./init:/docker-entrypoint-initdb.d", "pgdata:/var/lib/postgresql"]
        volumes:
          pgdata: {}
    """)
    write("db/.env", "PG=16\n")
    write("compose.yaml", """
        include:
          - db/compose.yaml
        services:
          web:
            image: app
            depends_on: [db]
    """)
    project = load()
    assert set(project.services) == {"web", "db"}
    assert project.services["db"].image == "postgres:16"
    assert project.services["db"].volumes[0].source == str(project_dir / "db" / "init")
    assert project.volumes["pgdata"].name == "myapp_pgdata"


def test_include_long_form_with_env_file(write: WriteFn, load: LoadFn) -> None:
    write("lib/part.yaml", "services:\n  cache:\n    image: redis:${V}\n")
    write("lib/custom.env", "V=7\n")
    write("compose.yaml", "include:\n  - path: lib/part.yaml\n    env_file: lib/custom.env\nservices: {}\n")
    assert load().services["cache"].image == "redis:7"


def test_include_conflict(write: WriteFn, load: LoadFn) -> None:
    write("part.yaml", "services:\n  web:\n    image: other\n")
    write("compose.yaml", "include: [part.yaml]\nservices:\n  web:\n    image: mine\n")
    with pytest.raises(LoadError) as info:
        load()
    assert str(info.value) == "compose.yaml: services.web: conflicts with the definition imported from part.yaml"


def test_include_cycle_detected(write: WriteFn, load: LoadFn) -> None:
    write("a.yaml", "include: [b.yaml]\nservices:\n  a:\n    image: a\n")
    write("b.yaml", "include: [a.yaml]\nservices:\n  b:\n    image: b\n")
    write("compose.yaml", "include: [a.yaml]\nservices: {}\n")
    with pytest.raises(LoadError) as info:
        load()
    assert "include cycle detected: a.yaml -> b.yaml -> a.yaml" in str(info.value)


def test_include_missing_file(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "include: [gone.yaml]\nservices: {}\n")
    with pytest.raises(LoadError, match="included file .*gone.yaml not found"):
        load()
