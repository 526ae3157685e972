from __future__ import annotations

from pathlib import Path

from tests.compose.conftest import LoadFn, WriteFn

BASE = """
services:
  web:
    image: nginx:1
    command: ["echo", "base"]
    entrypoint: ["/base"]
    environment:
      A: "1"
      B: "1"
    labels: [x=1]
    ports: ["8080:80", "127.0.0.1:9090:90"]
    expose: ["3000"]
    dns: 1.1.1.1
    cap_add: [NET_ADMIN]
    volumes: ["./a:/data", "cache:/cache"]
    healthcheck:
      test: ["CMD", "base"]
      interval: 10s
volumes:
  cache: {}
"""


def _merge(write: WriteFn, load: LoadFn, override: str) -> dict:
    write("compose.yaml", BASE)
    write("override.yaml", override)
    project = load(files=("compose.yaml", "override.yaml"))
    return dict(project.raw["services"]["web"])


def test_scalars_replace_and_mappings_merge_by_key(write: WriteFn, load: LoadFn) -> None:
    web = _merge(write, load, """
        services:
          web:
            image: nginx:2
            environment: ["B=2", "C=3"]
            labels: {y: "2"}
    """)
    assert web["image"] == "nginx:2"
    assert web["environment"] == {"A": "1", "B": "2", "C": "3"}
    assert web["labels"] == {"x": "1", "y": "2"}


def test_commands_replace(write: WriteFn, load: LoadFn) -> None:
    web = _merge(write, load, """
        services:
          web:
            command: echo override
            entrypoint: ["/override"]
            healthcheck: {test: ["CMD", "over"]}
    """)
    assert web["command"] == ["echo", "override"]
    assert web["entrypoint"] == ["/override"]
    assert web["healthcheck"]["test"] == ["CMD", "over"]
    assert web["healthcheck"]["interval"] == "10s"


def test_sequences_append_without_duplicates(write: WriteFn, load: LoadFn) -> None:
    web = _merge(write, load, """
        services:
          web:
            ports: ["8080:80", "8443:443"]
            expose: ["3000", "4000"]
            dns: [1.1.1.1, 8.8.8.8]
            cap_add: [NET_ADMIN, SYS_TIME]
    """)
    assert [(p["published"], p["target"]) for p in web["ports"]] == [("8080", 80), ("9090", 90), ("8443", 443)]
    assert web["expose"] == ["3000", "4000"]
    assert web["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert web["cap_add"] == ["NET_ADMIN", "SYS_TIME"]


def test_volumes_merge_by_target(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    web = _merge(write, load, """
        services:
          web:
            volumes: ["./b:/data:ro", "/logs:/logs"]
    """)
    assert [(v.get("source"), v["target"], v.get("read_only", False)) for v in web["volumes"]] == [
        (str(project_dir / "b"), "/data", True), ("cache", "/cache", False), ("/logs", "/logs", False)]


def test_reset_removes_and_override_replaces(write: WriteFn, load: LoadFn) -> None:
    web = _merge(write, load, """
        services:
          web:
            ports: !reset []
            environment: !override
              ONLY: "me"
            dns: !reset null
            cap_add: !override [SYS_TIME]
    """)
    assert "ports" not in web
    assert "dns" not in web
    assert web["environment"] == {"ONLY": "me"}
    assert web["cap_add"] == ["SYS_TIME"]


def test_override_file_adds_services_and_depends_on(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx\n    depends_on: [db]\n  db:\n    image: pg\n")
    write("compose.override.yaml", """
        services:
          web:
            depends_on:
              cache: {condition: service_healthy}
          cache:
            image: redis
    """)
    project = load()
    assert set(project.services) == {"web", "db", "cache"}
    assert project.raw["services"]["web"]["depends_on"] == {
        "db": {"condition": "service_started", "restart": False, "required": True},
        "cache": {"condition": "service_healthy", "restart": False, "required": True},
    }
    assert [p.name for p in project.config_files] == ["compose.yaml", "compose.override.yaml"]


def test_relative_paths_in_override_resolve_against_project_dir(
    write: WriteFn, load: LoadFn, project_dir: Path
) -> None:
    write("compose.yaml", "services:\n  web:\n    image: nginx\n")
    write("sub/extra.yaml", "services:\n  web:\n    volumes: ['./x:/x']\n")
    project = load(files=("compose.yaml", "sub/extra.yaml"))
    assert project.services["web"].volumes[0].source == str(project_dir / "x")


def test_anchors_merge_keys_and_extensions(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        x-defaults: &defaults
          restart: always
          environment:
            LEVEL: info
        services:
          a:
            <<: *defaults
            image: a
          b:
            <<: *defaults
            image: b
            restart: "no"
            x-note: kept
    """)
    project = load()
    assert project.services["a"].restart == "always"
    assert project.services["a"].environment == {"LEVEL": "info"}
    assert project.services["b"].restart == "no"
    assert project.raw["services"]["b"]["x-note"] == "kept"
    assert project.raw["x-defaults"]["restart"] == "always"
