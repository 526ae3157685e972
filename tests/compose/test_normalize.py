from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compose.loader.durations import format_duration, parse_duration
from compose.loader.errors import LoadError
from compose.loader.normalize import normalize_port, normalize_volume, parse_bytes
from compose.model import DependencyCondition
from tests.compose.conftest import LoadFn, WriteFn


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (80, [{"mode": "ingress", "target": 80, "protocol": "tcp"}]),
        ("80", [{"mode": "ingress", "target": 80, "protocol": "tcp"}]),
        ("8080:80", [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]),
        ("127.0.0.1:8080:80/udp",
         [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8080", "protocol": "udp"}]),
        ("127.0.0.1::80", [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "protocol": "tcp"}]),
        ("[::1]:8080:80", [{"mode": "ingress", "host_ip": "::1", "target": 80, "published": "8080",
                            "protocol": "tcp"}]),
        ("9000-9001:90-91", [{"mode": "ingress", "target": 90, "published": "9000", "protocol": "tcp"},
                             {"mode": "ingress", "target": 91, "published": "9001", "protocol": "tcp"}]),
        ("3000-3001", [{"mode": "ingress", "target": 3000, "protocol": "tcp"},
                       {"mode": "ingress", "target": 3001, "protocol": "tcp"}]),
        ("8000-8010:80", [{"mode": "ingress", "target": 80, "published": "8000-8010", "protocol": "tcp"}]),
        ({"target": 80, "published": 8080, "host_ip": "0.0.0.0", "mode": "host"},
         [{"mode": "host", "host_ip": "0.0.0.0", "target": 80, "published": "8080", "protocol": "tcp"}]),
    ],
)
def test_ports_long_syntax(spec: Any, expected: list[dict[str, Any]]) -> None:
    assert normalize_port(spec) == expected


@pytest.mark.parametrize("spec", ["8000-8001:80-82", "70000:80", "80/icmp", "a:b"])
def test_bad_ports(spec: str) -> None:
    with pytest.raises(ValueError):
        normalize_port(spec)


def test_bad_port_error_names_path(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    ports: ['80', '1-3:4-5']\n")
    with pytest.raises(LoadError) as info:
        load()
    assert str(info.value) == "compose.yaml: services.web.ports[1]: port ranges '1-3' and '4-5' differ in length"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/data", {"type": "volume", "target": "/data", "volume": {}}),
        ("db:/var/lib/db", {"type": "volume", "source": "db", "target": "/var/lib/db", "volume": {}}),
        ("db:/var/lib/db:ro,nocopy", {"type": "volume", "source": "db", "target": "/var/lib/db",
                                      "volume": {"nocopy": True}, "read_only": True}),
        ("./src:/app", {"type": "bind", "source": "/proj/src", "target": "/app", "bind": {"create_host_path": True}}),
        ("/etc/x:/x:ro,rshared", {"type": "bind", "source": "/etc/x", "target": "/x", "read_only": True,
                                  "bind": {"create_host_path": True, "propagation": "rshared"}}),
        ({"type": "bind", "source": "../up", "target": "/up"}, {"type": "bind", "source": "/up", "target": "/up"}),
        ({"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 1000}},
         {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 1000}}),
    ],
)
def test_volumes_long_syntax(spec: Any, expected: dict[str, Any]) -> None:
    assert normalize_volume(spec, Path("/proj")) == expected


def test_home_directory_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    assert normalize_volume("~/x:/x", Path("/proj"))["source"] == "/home/me/x"


@pytest.mark.parametrize(("text", "ns", "printed"), [
    ("90s", 90 * 10**9, "1m30s"), ("1h", 3600 * 10**9, "1h0m0s"), ("500ms", 5 * 10**8, "500ms"),
    ("1.5s", 15 * 10**8, "1.5s"), ("1m30s", 90 * 10**9, "1m30s"), ("10", 10**10, "10s"), ("2us", 2000, "2µs"),
])
def test_durations(text: str, ns: int, printed: str) -> None:
    assert parse_duration(text) == ns
    assert format_duration(ns) == printed


def test_parse_bytes() -> None:
    assert parse_bytes("512m") == 512 * 1024**2
    assert parse_bytes("1g") == 1024**3
    assert parse_bytes(42) == 42


FULL = """
services:
  web:
    image: nginx
    build: ./web
    command: sh -c "echo 'hi there'"
    environment:
      - FROM_SHELL
      - UNSET_ONE
      - LITERAL=a=b
    env_file:
      - ./base.env
      - path: ./optional.env
        required: false
    depends_on:
      db:
        condition: service_healthy
        restart: true
      cache:
        condition: service_started
    links: [logger]
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
      timeout: 10s
      start_period: 500ms
      retries: 3
    secrets: [token, {source: cert, target: /certs/c.pem, mode: "0400"}, {source: token, target: tk}]
    configs: [conf]
    dns: 8.8.8.8
    extra_hosts: ["host.local:10.0.0.1", "v6:::1", "new=10.0.0.2"]
    stop_grace_period: 90s
  db:
    image: postgres
    networks: [back]
    healthcheck: {disable: true}
  cache: {image: redis, networks: {back: {aliases: [c]}}}
  logger: {image: busybox, network_mode: host}
networks:
  back: {}
  outside: {external: true}
volumes:
  named: {name: explicitly}
secrets:
  token: {file: ./token.txt}
  cert: {environment: CERT}
configs:
  conf: {content: "x=1"}
"""


@pytest.fixture
def full(write: WriteFn, load: LoadFn) -> Any:
    write("compose.yaml", FULL)
    write("base.env", "FROM_FILE=f\nLITERAL=from-file\n")
    return load(environ={"FROM_SHELL": "s"})


def test_environment_from_env_file_shell_and_literal(full: Any) -> None:
    raw = full.raw["services"]["web"]
    assert raw["environment"] == {"FROM_FILE": "f", "LITERAL": "a=b", "FROM_SHELL": "s", "UNSET_ONE": None}
    assert "env_file" not in raw
    assert full.services["web"].environment == {"FROM_FILE": "f", "LITERAL": "a=b", "FROM_SHELL": "s"}


def test_required_env_file_missing(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    env_file: missing.env\n")
    with pytest.raises(LoadError) as info:
        load()
    assert str(info.value) == f"compose.yaml: services.web.env_file: env file {project_dir / 'missing.env'} not found"


def test_command_split_like_a_shell(full: Any) -> None:
    assert full.services["web"].command == ("sh", "-c", "echo 'hi there'")


def test_build_context_absolute(full: Any, project_dir: Path) -> None:
    assert full.raw["services"]["web"]["build"] == {"context": str(project_dir / "web"), "dockerfile": "Dockerfile"}


def test_depends_on_long_form_and_links(full: Any) -> None:
    assert full.raw["services"]["web"]["depends_on"] == {
        "db": {"condition": "service_healthy", "restart": True, "required": True},
        "cache": {"condition": "service_started", "restart": False, "required": True},
        "logger": {"condition": "service_started", "restart": True, "required": True},
    }
    assert full.services["web"].depends_on["db"].condition is DependencyCondition.HEALTHY


def test_healthcheck(full: Any) -> None:
    raw = full.raw["services"]["web"]["healthcheck"]
    assert raw == {"test": ["CMD-SHELL", "curl -f http://localhost"], "interval": "1m30s", "timeout": "10s",
                   "start_period": "500ms", "retries": 3}
    check = full.services["web"].healthcheck
    assert (check.interval_ns, check.timeout_ns, check.start_period_ns) == (90 * 10**9, 10**10, 5 * 10**8)
    assert full.raw["services"]["db"]["healthcheck"] == {"disable": True, "test": ["NONE"]}
    assert full.raw["services"]["web"]["stop_grace_period"] == "1m30s"


def test_networks_default_added_and_named(full: Any) -> None:
    assert full.raw["services"]["web"]["networks"] == {"default": None}
    assert full.raw["services"]["db"]["networks"] == {"back": None}
    assert full.services["cache"].networks["back"].aliases == ("c",)
    assert "networks" not in full.raw["services"]["logger"]
    assert full.raw["networks"] == {
        "back": {"name": "myapp_back"}, "default": {"name": "myapp_default"},
        "outside": {"name": "outside", "external": True},
    }


def test_volumes_secrets_configs(full: Any, project_dir: Path) -> None:
    assert full.raw["volumes"] == {"named": {"name": "explicitly"}}
    assert full.raw["secrets"]["token"] == {"name": "myapp_token", "file": str(project_dir / "token.txt")}
    assert full.raw["configs"]["conf"] == {"name": "myapp_conf", "content": "x=1"}
    assert full.raw["services"]["web"]["secrets"] == [
        {"source": "token", "target": "/run/secrets/token"},
        {"source": "cert", "target": "/certs/c.pem", "mode": "0400"},
        {"source": "token", "target": "/run/secrets/tk"},
    ]
    assert full.services["web"].secrets[1].mode == 0o400
    assert full.services["web"].configs[0].target == "/conf"


def test_misc_lists(full: Any) -> None:
    raw = full.raw["services"]["web"]
    assert raw["dns"] == ["8.8.8.8"]
    assert raw["extra_hosts"] == ["host.local=10.0.0.1", "v6=::1", "new=10.0.0.2"]
    assert list(full.raw) == ["name", "services", "networks", "volumes", "secrets", "configs"]
    assert list(raw) == sorted(raw)
