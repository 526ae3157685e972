"""The pure translation of a service into engine request bodies."""

from __future__ import annotations

import pytest

from compose.container_spec import (
    CreateOptions,
    SpecError,
    container_create_body,
    network_create_body,
    parse_size,
    restart_policy,
    secondary_networks,
    volume_create_body,
)
from compose.model import Project
from compose.planner import container_labels
from tests.compose.conftest import LoadFn, WriteFn

FULL = """
services:
  web:
    image: busybox
    command: httpd -f -p 80
    entrypoint: [/bin/sh, -c]
    environment: {A: "1", UNSET: null}
    ports: ["8080:80", "127.0.0.1:9000:9000/udp", "7000"]
    expose: ["81", "82-83/udp"]
    volumes: ["data:/data", "./site:/site:ro", "/anon", {type: tmpfs, target: /t, tmpfs: {size: 1m}}]
    tmpfs: ["/run:size=64k"]
    healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 1s, retries: 3, start_period: 5s}
    deploy:
      resources: {limits: {memory: 64m, cpus: "0.5", pids: 100}}
      restart_policy: {condition: on-failure, max_attempts: 3}
    extra_hosts: ["db.local:10.0.0.5"]
    dns: [8.8.8.8]
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    init: true
    read_only: true
    user: "1000:1000"
    working_dir: /srv
    hostname: webhost
    stop_signal: SIGINT
    stop_grace_period: 1m30s
    logging: {driver: json-file, options: {max-size: 1m}}
    sysctls: {net.core.somaxconn: 1024}
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
    networks:
      front: {aliases: [www], ipv4_address: 172.30.0.10}
      back: {}
networks:
  front:
    ipam: {config: [{subnet: 172.30.0.0/24}]}
    labels: {tier: front}
  back: {internal: true}
volumes:
  data: {driver_opts: {type: tmpfs}}
"""


@pytest.fixture
def project(write: WriteFn, load: LoadFn) -> Project:
    write("compose.yaml", FULL)
    return load()


def body_of(project: Project, service: str = "web", **options: object) -> dict:
    svc = project.services[service]
    labels = container_labels(project, svc, number=1)
    return container_create_body(project, svc, CreateOptions(name=f"myapp-{service}-1", labels=labels,
                                                             **options))  # type: ignore[arg-type]


def test_config_fields(project: Project) -> None:
    body = body_of(project)
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["httpd", "-f", "-p", "80"]
    assert body["Entrypoint"] == ["/bin/sh", "-c"]
    assert body["Env"] == ["A=1"]
    assert body["Labels"]["com.docker.compose.service"] == "web"
    assert body["Labels"]["com.docker.compose.container-number"] == "1"
    assert set(body["ExposedPorts"]) == {"81/tcp", "82/udp", "83/udp", "80/tcp", "9000/udp", "7000/tcp"}
    assert body["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "Timeout": 1_000_000_000,
                                   "StartPeriod": 5_000_000_000, "Retries": 3}
    assert (body["User"], body["WorkingDir"], body["Hostname"], body["StopSignal"]) == \
        ("1000:1000", "/srv", "webhost", "SIGINT")
    assert body["StopTimeout"] == 90


def test_host_config(project: Project, project_dir: object) -> None:
    hc = body_of(project)["HostConfig"]
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                  "9000/udp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
                                  "7000/tcp": [{"HostIp": "", "HostPort": ""}]}
    assert hc["Binds"] == [f"{project_dir}/site:/site:ro"]
    assert hc["Mounts"] == [
        {"Type": "volume", "Source": "myapp_data", "Target": "/data", "ReadOnly": False},
        {"Type": "volume", "Source": "", "Target": "/anon", "ReadOnly": False},
        {"Type": "tmpfs", "Target": "/t", "ReadOnly": False, "TmpfsOptions": {"SizeBytes": 1 << 20}},
    ]
    assert hc["Tmpfs"] == {"/run": "size=64k"}
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (64 << 20, 500_000_000, 100)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["ExtraHosts"] == ["db.local:10.0.0.5"]
    assert (hc["Dns"], hc["CapAdd"], hc["CapDrop"]) == (["8.8.8.8"], ["NET_ADMIN"], ["MKNOD"])
    assert (hc["Init"], hc["ReadonlyRootfs"]) == (True, True)
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert hc["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "nproc", "Soft": 64, "Hard": 64}]


def test_networks_primary_then_connected(project: Project) -> None:
    body = body_of(project)
    # compose orders a service's networks by priority, then name: back before front
    assert body["HostConfig"]["NetworkMode"] == "myapp_back"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"myapp_back": {"Aliases": ["web"]}}}
    assert secondary_networks(project, project.services["web"]) == [
        ("myapp_front", {"Aliases": ["web", "www"], "IPAMConfig": {"IPv4Address": "172.30.0.10"}})]


def test_resource_bodies(project: Project) -> None:
    front = network_create_body(project.networks["front"], {"com.docker.compose.network": "front"})
    assert front["Name"] == "myapp_front" and front["Driver"] == "bridge"
    assert front["IPAM"]["Config"] == [{"Subnet": "172.30.0.0/24"}]
    assert network_create_body(project.networks["back"], {})["Internal"] is True
    data = volume_create_body(project.volumes["data"], {"x": "y"})
    assert data == {"Name": "myapp_data", "Driver": "local", "Labels": {"x": "y"}, "DriverOpts": {"type": "tmpfs"}}


def test_run_overrides(project: Project) -> None:
    body = body_of(project, command=("echo", "hi"), environment={"B": "2"}, ports=False, auto_remove=True,
                   extra_port_bindings={"80/tcp": [{"HostIp": "", "HostPort": "1234"}]})
    assert body["Cmd"] == ["echo", "hi"]
    assert body["Env"] == ["A=1", "B=2"]
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "1234"}]}
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "no"}


def test_network_mode_and_restart(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          a: {image: busybox, network_mode: host, restart: "on-failure:2"}
          b: {image: busybox, network_mode: "service:a", restart: unless-stopped}
          c: {image: busybox, network_mode: none}
        """)
    project = load()
    assert body_of(project, "a")["HostConfig"]["NetworkMode"] == "host"
    assert "NetworkingConfig" not in body_of(project, "a")
    assert restart_policy(project.services["a"]) == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert body_of(project, "b", service_containers={"a": "abc"})["HostConfig"]["NetworkMode"] == "container:abc"
    with pytest.raises(SpecError, match="no container of a"):
        body_of(project, "b")
    assert body_of(project, "c")["HostConfig"]["NetworkMode"] == "none"


def test_secrets_and_configs_are_read_only_binds(write: WriteFn, load: LoadFn, project_dir: object) -> None:
    write("compose.yaml", """
        services:
          app:
            image: busybox
            secrets: [pw]
            configs: [{source: conf, target: /etc/app.conf}]
        secrets:
          pw: {file: ./pw.txt}
        configs:
          conf: {content: "x=1"}
        """)
    project = load()
    with pytest.raises(SpecError, match="config conf: its content was not written"):
        body_of(project, "app")
    body = body_of(project, "app", secret_paths={("configs", "conf"): "/run/x/conf"})
    assert body["HostConfig"]["Binds"] == [f"{project_dir}/pw.txt:/run/secrets/pw:ro", "/run/x/conf:/etc/app.conf:ro"]


@pytest.mark.parametrize(("value", "expected"), [("64m", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
                                                 (1024, 1024), ("1.5m", int(1.5 * (1 << 20)))])
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected
