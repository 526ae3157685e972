"""`stack deploy`'s pure core: compose files written to tmp_path, loaded with load_stack, mapped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from compose.model import Project, build_service
from orchestrator.model import (
    ContainerSpec,
    DependencyCondition,
    EndpointMode,
    FailureAction,
    FileReference,
    HealthConfig,
    Mount,
    MountType,
    NetworkAttachmentConfig,
    PlacementPreference,
    PortConfig,
    PortProtocol,
    PublishMode,
    Resources,
    RestartCondition,
    RestartPolicy,
    ServiceDependency,
    ServiceMode,
    ServiceSpec,
    UpdateConfig,
    UpdateOrder,
    from_dict,
    to_dict,
)
from orchestrator.stacks.errors import StackError
from orchestrator.stacks.mapping import (
    IGNORED_SERVICE_KEYS,
    MAX_CONFIG_SIZE,
    MAX_SECRET_SIZE,
    SUPPORTED_SERVICE_KEYS,
    load_stack,
    map_project,
    read_contents,
)
from orchestrator.stacks.model import IMAGE_LABEL, NAMESPACE_LABEL, StackDeployment

NS = {NAMESPACE_LABEL: "app"}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(directory: Path, text: str | None = None, *, environ: Mapping[str, str] | None = None,
         profiles: Sequence[str] = ()) -> Project:
    if text is not None:
        write(directory, "compose.yaml", text)
    return load_stack(stack="app", files=[directory / "compose.yaml"], environ=environ or {}, profiles=profiles)


def deploy(directory: Path, text: str | None = None, *, environ: Mapping[str, str] | None = None,
           images: Mapping[str, str] | None = None, profiles: Sequence[str] = ()) -> StackDeployment:
    project = load(directory, text, environ=environ, profiles=profiles)
    return map_project(project, images=images or {}, contents=read_contents(project, environ or {}))


def issues(directory: Path, text: str, *, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(StackError) as caught:
        deploy(directory, text, environ=environ)
    return caught.value.issues


def service(deployment: StackDeployment, name: str) -> ServiceSpec:
    (found,) = [s for s in deployment.services if s.name == f"app_{name}"]
    return found


# --- names, labels, container ------------------------------------------------------------------


def test_names_and_labels(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        name: ignored  # the stack's name wins over name: and COMPOSE_PROJECT_NAME
        services:
          web:
            image: busybox:1
            labels: {tier: front, empty: null}
            deploy: {labels: [team=web, bare]}
            networks: [front]
            secrets: [pw]
            configs: [conf]
        networks:
          front: {labels: {net: "1"}}
        secrets:
          pw: {environment: PW}
        configs:
          conf: {content: "y", labels: [kind=conf]}
    """, environ={"PW": "x", "COMPOSE_PROJECT_NAME": "other"})
    web = service(d, "web")
    assert d.spec.name == "app"
    assert web.name == "app_web"
    assert web.labels == {"team": "web", "bare": "", **NS, IMAGE_LABEL: "busybox:1"}
    assert web.task.container.labels == {"tier": "front", "empty": "", **NS}
    assert [(n.name, n.labels) for n in d.networks] == [("app_front", {"net": "1", **NS})]
    assert [(s.name, s.labels) for s in d.secrets] == [("app_pw", NS)]
    assert [(c.name, c.labels) for c in d.configs] == [("app_conf", {"kind": "conf", **NS})]


def test_container_fields(tmp_path: Path) -> None:
    write(tmp_path, "web.env", "FROM_FILE=1\nB=file\n")
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            command: httpd -f -p 80
            entrypoint: [/bin/sh, -c]
            env_file: web.env
            environment: {B: "2", A: "1", UNSET: null}
            working_dir: /srv
            user: "1000:1000"
            hostname: webhost
            stop_grace_period: 1m30s
            read_only: true
    """)
    c = service(d, "web").task.container
    assert c == ContainerSpec(
        image="busybox", command=("/bin/sh", "-c"), args=("httpd", "-f", "-p", "80"),
        env=("A=1", "B=2", "FROM_FILE=1"), labels=NS, hostname="webhost", user="1000:1000", workdir="/srv",
        stop_grace_period=90.0, read_only=True)


def test_images_given_by_the_caller_win_and_a_build_needs_one(tmp_path: Path) -> None:
    text = """
        services:
          built: {build: ./ctx}
          tagged: {build: ./ctx, image: app/tagged:dev}
          plain: {image: busybox}
    """
    d = deploy(tmp_path, text, images={"built": "app-built@sha256:aa", "tagged": "app/tagged@sha256:bb"})
    assert service(d, "built").task.container.image == "app-built@sha256:aa"
    assert service(d, "built").labels[IMAGE_LABEL] == "app-built@sha256:aa"
    assert service(d, "tagged").task.container.image == "app/tagged@sha256:bb"
    assert service(d, "tagged").labels[IMAGE_LABEL] == "app/tagged:dev"  # what the file names, as Docker
    assert service(d, "plain").task.container.image == "busybox"
    assert issues(tmp_path, text) == (
        "services.built: has no image: build it first (its image is then passed in) or set `image:`",)


def test_healthcheck(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          a:
            image: busybox
            healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 500ms, retries: 3, start_period: 1m}
          b:
            image: busybox
            healthcheck: {test: "wget -q localhost"}
          c:
            image: busybox
            healthcheck: {disable: true}
    """)
    assert service(d, "a").task.container.healthcheck == HealthConfig(
        test=("CMD", "true"), interval=2.0, timeout=0.5, retries=3, start_period=60.0)
    assert service(d, "b").task.container.healthcheck == HealthConfig(test=("CMD-SHELL", "wget -q localhost"))
    assert service(d, "c").task.container.healthcheck == HealthConfig(test=("NONE",))
    assert issues(tmp_path, """
        services:
          a: {image: busybox, healthcheck: {test: [CMD, "true"], start_interval: 1s}}
    """) == ("services.a.healthcheck.start_interval: not supported by the cluster",)


# --- mounts ------------------------------------------------------------------------------------


def test_volumes_binds_and_tmpfs(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            volumes:
              - data:/data
              - shared:/shared:ro
              - /anon
              - ./site:/site:ro
              - {type: tmpfs, target: /t, tmpfs: {size: 1m}}
            tmpfs: ["/run:size=64k,mode=1777", /tmp]
        volumes:
          data: {}
          shared: {external: true, name: team-shared}
    """)
    assert service(d, "web").task.container.mounts == (
        Mount(type=MountType.VOLUME, source="app_data", target="/data"),
        Mount(type=MountType.VOLUME, source="team-shared", target="/shared", read_only=True),
        Mount(type=MountType.VOLUME, source="", target="/anon"),
        Mount(type=MountType.BIND, source=str(tmp_path / "site"), target="/site", read_only=True),
        Mount(type=MountType.TMPFS, target="/t", tmpfs_size_bytes=1 << 20),
        Mount(type=MountType.TMPFS, target="/run", tmpfs_size_bytes=64 << 10, tmpfs_mode=0o1777),
        Mount(type=MountType.TMPFS, target="/tmp"),
    )


def test_mount_options_the_cluster_cannot_honour(tmp_path: Path) -> None:
    assert issues(tmp_path, """
        services:
          web:
            image: busybox
            volumes:
              - data:/data:nocopy
              - {type: bind, source: /srv, target: /srv, bind: {propagation: rshared}}
              - {type: npipe, source: //./pipe/x, target: //./pipe/x}
            tmpfs: ["/run:noexec"]
        volumes:
          data: {driver: nfs, driver_opts: {o: addr=1.2.3.4}}
    """) == (
        "services.web.volumes[0].volume.nocopy: not supported by the cluster",
        "services.web.volumes[1].bind.propagation: not supported by the cluster",
        "services.web.volumes[2].type: npipe mounts are not supported by the cluster (volume, bind, tmpfs)",
        "services.web.tmpfs[0]: tmpfs option 'noexec' is not supported by the cluster (size, mode, ro)",
        "volumes.data.driver: nfs is not supported by the cluster (local)",
        "volumes.data.driver_opts: not supported by the cluster",
    )


# --- ports -------------------------------------------------------------------------------------


def test_ports_ingress_and_host(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            ports:
              - "8080:80"
              - "53:53/udp"
              - "9000"
              - {target: 443, published: 8443, mode: host, name: https}
              - "0.0.0.0:81:81"
    """)
    assert service(d, "web").endpoint.ports == (
        PortConfig(target_port=80, published_port=8080),
        PortConfig(protocol=PortProtocol.UDP, target_port=53, published_port=53),
        PortConfig(target_port=9000),
        PortConfig(name="https", target_port=443, published_port=8443, publish_mode=PublishMode.HOST),
        PortConfig(target_port=81, published_port=81),
    )


def test_ports_the_cluster_cannot_publish(tmp_path: Path) -> None:
    assert issues(tmp_path, """
        services:
          web:
            image: busybox
            ports: ["127.0.0.1:8080:80", "9000-9001:9000"]
    """) == (
        "services.web.ports[0].host_ip: 127.0.0.1: a cluster publishes on every address of its nodes",
        "services.web.ports[1].published: 9000-9001: the cluster publishes single ports, not ranges",
    )


# --- networks ----------------------------------------------------------------------------------


def test_default_network_aliases_and_only_used_networks(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            networks:
              front: {aliases: [www, web]}
              back:
          db:
            image: busybox
            networks: [back]
          cache:
            image: busybox
        networks:
          front:
            driver: overlay
            attachable: true
            internal: true
            driver_opts: {encrypted: "", mtu: 1400}
            ipam: {config: [{subnet: 10.9.0.0/24}]}
          back: {}
          unused: {driver: bridge}
          outside: {external: true, name: corp-net}
    """)
    assert service(d, "web").task.networks == (
        NetworkAttachmentConfig(target="app_back", aliases=("web",)),
        NetworkAttachmentConfig(target="app_front", aliases=("www", "web")),
    )
    assert service(d, "cache").task.networks == (NetworkAttachmentConfig(target="app_default", aliases=("cache",)),)
    front = next(n for n in d.networks if n.name == "app_front")
    assert (front.driver, front.attachable, front.internal, front.subnets, front.options) == (
        "overlay", True, True, ("10.9.0.0/24",), {"encrypted": "", "mtu": "1400"})
    assert [n.name for n in d.networks] == ["app_back", "app_default", "app_front"]  # not unused, not corp-net
    assert d.external_networks == ()


def test_no_default_network_unless_used(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web: {image: busybox, networks: [outside]}
        networks:
          outside: {external: true, name: corp-net}
    """)
    assert d.networks == ()
    assert d.external_networks == ("corp-net",)
    assert service(d, "web").task.networks == (NetworkAttachmentConfig(target="corp-net", aliases=("web",)),)


def test_network_settings_the_cluster_cannot_honour(tmp_path: Path) -> None:
    assert issues(tmp_path, """
        services:
          web:
            image: busybox
            networks:
              front: {ipv4_address: 10.9.0.5}
              hostnet:
              lan:
        networks:
          front: {ipam: {config: [{subnet: 10.9.0.0/24, gateway: 10.9.0.254}]}, enable_ipv6: true}
          hostnet: {external: true, name: host}
          lan: {driver: macvlan}
    """) == (
        "services.web.networks.front.ipv4_address: not supported by the cluster",
        "networks.front.enable_ipv6: not supported by the cluster",
        "networks.front.ipam.config[0].gateway: not supported by the cluster",
        "networks.lan.driver: macvlan is not supported by the cluster: a stack's networks are overlay networks "
        "(or make it external)",
    )


def test_no_alias_on_the_host_network(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web: {image: busybox, networks: [hostnet]}
        networks:
          hostnet: {external: true, name: host}
    """)
    assert service(d, "web").task.networks == (NetworkAttachmentConfig(target="host"),)


# --- deploy ------------------------------------------------------------------------------------


def test_deploy_mode_and_replicas(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          rep: {image: busybox, deploy: {replicas: 3}}
          scaled: {image: busybox, scale: 2}
          zero: {image: busybox, deploy: {mode: replicated, replicas: 0}}
          glob: {image: busybox, deploy: {mode: global}}
          one: {image: busybox}
    """)
    assert [(s.name, s.mode, s.replicas) for s in d.services] == [
        ("app_glob", ServiceMode.GLOBAL, 0), ("app_one", ServiceMode.REPLICATED, 1),
        ("app_rep", ServiceMode.REPLICATED, 3), ("app_scaled", ServiceMode.REPLICATED, 2),
        ("app_zero", ServiceMode.REPLICATED, 0)]
    assert issues(tmp_path, """
        services:
          glob: {image: busybox, deploy: {mode: global, replicas: 2}}
          job: {image: busybox, deploy: {mode: replicated-job}}
    """) == ("services.glob.deploy.replicas: can only be used with replicated mode, not global",
             "services.job.deploy.mode: replicated-job is not supported by the cluster (replicated or global)")


def test_deploy_placement(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            deploy:
              placement:
                constraints: [node.role == manager, node.labels.zone != b]
                preferences: [{spread: node.labels.zone}]
                max_replicas_per_node: 2
    """)
    placement = service(d, "web").task.placement
    assert placement.constraints == ("node.role == manager", "node.labels.zone != b")
    assert placement.preferences == (PlacementPreference(spread="node.labels.zone"),)
    assert placement.max_replicas == 2
    found = issues(tmp_path, """
        services:
          web:
            image: busybox
            deploy: {placement: {constraints: [node.role], preferences: [{spread: zone}], platforms: []}}
    """)
    assert [i.split(":")[0] for i in found] == [
        "services.web.deploy.placement.platforms", "services.web.deploy.placement.constraints[0]",
        "services.web.deploy.placement.preferences[0].spread"]


def test_deploy_resources(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            deploy:
              resources:
                limits: {cpus: "0.5", memory: 64M}
                reservations: {cpus: 0.25, memory: 1g}
          legacy: {image: busybox, cpus: 1.5, mem_limit: 128m, mem_reservation: 32m}
          both: {image: busybox, mem_limit: 128m, deploy: {resources: {limits: {memory: 256m}}}}
    """)
    web = service(d, "web").task.resources
    assert web.limits == Resources(nano_cpus=500_000_000, memory_bytes=64 << 20)
    assert web.reservations == Resources(nano_cpus=250_000_000, memory_bytes=1 << 30)
    legacy = service(d, "legacy").task.resources
    assert legacy.limits == Resources(nano_cpus=1_500_000_000, memory_bytes=128 << 20)
    assert legacy.reservations == Resources(memory_bytes=32 << 20)
    assert service(d, "both").task.resources.limits.memory_bytes == 256 << 20
    assert issues(tmp_path, """
        services:
          web:
            image: busybox
            deploy:
              resources:
                limits: {cpus: lots, memory: 1x, pids: 10}
                reservations: {devices: [{capabilities: [gpu]}]}
    """) == (
        "services.web.deploy.resources.limits.pids: not supported by the cluster",
        "services.web.deploy.resources.reservations.devices: not supported by the cluster",
        "services.web.deploy.resources.limits.cpus: must be a number of CPUs such as 0.5 or 2, not 'lots'",
        "services.web.deploy.resources.limits.memory: invalid size: '1x'",
    )


def test_deploy_restart_policy(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            restart: always
            deploy: {restart_policy: {condition: on-failure, delay: 2s, max_attempts: 4, window: 1m}}
          default: {image: busybox, deploy: {restart_policy: {}}}
    """)
    assert service(d, "web").task.restart_policy == RestartPolicy(
        condition=RestartCondition.ON_FAILURE, delay=2.0, max_attempts=4, window=60.0)
    assert service(d, "default").task.restart_policy == RestartPolicy()
    assert d.warnings == ("services.web.restart: ignored: deploy.restart_policy is set too, and wins",)


@pytest.mark.parametrize(("restart", "expected"), [
    ('"no"', RestartPolicy(condition=RestartCondition.NONE)),
    ("always", RestartPolicy(condition=RestartCondition.ANY)),
    ("unless-stopped", RestartPolicy(condition=RestartCondition.ANY)),
    ("on-failure", RestartPolicy(condition=RestartCondition.ON_FAILURE)),
    ("on-failure:3", RestartPolicy(condition=RestartCondition.ON_FAILURE, max_attempts=3)),
    (None, RestartPolicy(condition=RestartCondition.ANY)),  # Swarm's default
])
def test_restart_mapping(tmp_path: Path, restart: str | None, expected: RestartPolicy) -> None:
    line = f"restart: {restart}" if restart else ""
    d = deploy(tmp_path, f"""
        services:
          web:
            image: busybox
            {line}
    """)
    assert service(d, "web").task.restart_policy == expected


def test_deploy_update_and_rollback(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            deploy:
              update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 30s,
                              max_failure_ratio: 0.25, order: start-first}
              rollback_config: {parallelism: 0, failure_action: continue}
    """)
    web = service(d, "web")
    assert web.update_config == UpdateConfig(parallelism=2, delay=10.0, failure_action=FailureAction.ROLLBACK,
                                             monitor=30.0, max_failure_ratio=0.25, order=UpdateOrder.START_FIRST)
    assert web.rollback_config == UpdateConfig(parallelism=0, failure_action=FailureAction.CONTINUE)
    assert issues(tmp_path, """
        services:
          web:
            image: busybox
            deploy:
              update_config: {order: sideways, max_failure_ratio: 2, delay: soon, speed: 3}
              rollback_config: {failure_action: rollback}
    """) == (
        "services.web.deploy.update_config.speed: unknown option (expected one of: delay, failure_action, "
        "max_failure_ratio, monitor, order, parallelism)",
        "services.web.deploy.update_config.delay: invalid duration 'soon'",
        "services.web.deploy.update_config.max_failure_ratio: must be a number from 0 to 1, not 2",
        "services.web.deploy.update_config.order: must be one of stop-first, start-first, not 'sideways'",
        "services.web.deploy.rollback_config.failure_action: must be one of pause, continue, not 'rollback'",
    )


def test_deploy_endpoint_mode(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web: {image: busybox, deploy: {endpoint_mode: dnsrr}, ports: [{target: 80, published: 80, mode: host}]}
          vip: {image: busybox, deploy: {endpoint_mode: vip}}
    """)
    assert service(d, "web").endpoint.mode is EndpointMode.DNSRR
    assert service(d, "vip").endpoint.mode is EndpointMode.VIP
    assert issues(tmp_path, """
        services:
          web: {image: busybox, deploy: {endpoint_mode: dnsrr}, ports: ["80:80"]}
    """) == ("services.web.deploy.endpoint_mode: dnsrr can't be used with ports published in ingress mode "
             "(the routing mesh needs a VIP); publish them in host mode",)


def test_interpolated_deploy_numbers(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            deploy:
              replicas: ${N}
              update_config: {parallelism: "${N}", max_failure_ratio: "${R}"}
              restart_policy: {max_attempts: "${N}"}
    """, environ={"N": "3", "R": "0.5"})
    web = service(d, "web")
    assert (web.replicas, web.update_config.parallelism, web.update_config.max_failure_ratio) == (3, 3, 0.5)
    assert web.task.restart_policy.max_attempts == 3


# --- depends_on --------------------------------------------------------------------------------


def test_depends_on_conditions(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web:
            image: busybox
            depends_on:
              db: {condition: service_healthy}
              migrate: {condition: service_completed_successfully}
              cache: {condition: service_started}
              optional: {condition: service_started, required: false}
          db: {image: busybox}
          migrate: {image: busybox}
          cache: {image: busybox}
          plain: {image: busybox, depends_on: [db]}
    """)
    assert service(d, "web").depends_on == (
        ServiceDependency(service="app_cache", condition=DependencyCondition.STARTED),
        ServiceDependency(service="app_db", condition=DependencyCondition.HEALTHY),
        ServiceDependency(service="app_migrate", condition=DependencyCondition.COMPLETED_SUCCESSFULLY),
    )
    assert service(d, "plain").depends_on == (ServiceDependency(service="app_db"),)
    assert any("optional" in w for w in d.warnings)  # the loader's: dropped


def test_depends_on_restart_is_an_issue(tmp_path: Path) -> None:
    assert issues(tmp_path, """
        services:
          web: {image: busybox, depends_on: {db: {condition: service_started, restart: true}}}
          db: {image: busybox}
    """) == ("services.web.depends_on.db.restart: the cluster does not restart a service when a dependency is "
             "updated or restarted; remove it or set it to false",)


# --- secrets and configs -----------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


SECRETS = """
    services:
      web:
        image: busybox
        secrets:
          - pw
          - {source: token, target: api/token, uid: "100", gid: "101", mode: 0400}
          - {source: cert, target: /etc/ssl/cert.pem}
          - shared
        configs:
          - conf
          - {source: nginx, target: /etc/nginx/nginx.conf, mode: 0440}
    secrets:
      pw: {file: ./pw.txt}
      token: {environment: TOKEN}
      cert: {file: ./cert.pem}
      shared: {external: true, name: corp-secret}
      unused: {file: ./pw.txt}
    configs:
      conf: {content: "level=${LEVEL}"}
      nginx: {file: ./nginx.conf}
"""


def write_secret_files(directory: Path, pw: str = "hunter2") -> None:
    write(directory, "pw.txt", pw)
    write(directory, "cert.pem", "CERT")
    write(directory, "nginx.conf", "events {}")


def test_secrets_and_configs_from_file_environment_and_content(tmp_path: Path) -> None:
    write_secret_files(tmp_path)
    d = deploy(tmp_path, SECRETS, environ={"TOKEN": "t0k", "LEVEL": "debug"})
    c = service(d, "web").task.container
    assert c.secrets == (
        FileReference(name="app_cert", target="/etc/ssl/cert.pem", digest=sha(b"CERT")),
        FileReference(name="app_pw", target="pw", digest=sha(b"hunter2")),
        FileReference(name="app_token", target="api/token", uid="100", gid="101", mode=0o400, digest=sha(b"t0k")),
        FileReference(name="corp-secret", target="shared"),
    )
    assert c.configs == (
        FileReference(name="app_conf", target="/conf", digest=sha(b"level=debug")),
        FileReference(name="app_nginx", target="/etc/nginx/nginx.conf", mode=0o440, digest=sha(b"events {}")),
    )
    assert [(s.name, s.data) for s in d.secrets] == [
        ("app_cert", b"CERT"), ("app_pw", b"hunter2"), ("app_token", b"t0k"), ("app_unused", b"hunter2")]
    assert [(s.name, s.data) for s in d.configs] == [("app_conf", b"level=debug"), ("app_nginx", b"events {}")]
    assert d.external_secrets == ("corp-secret",)
    assert d.external_configs == ()


def test_a_changed_secret_changes_the_spec(tmp_path: Path) -> None:
    environ = {"TOKEN": "t", "LEVEL": "x"}
    write_secret_files(tmp_path, pw="one")
    before = deploy(tmp_path, SECRETS, environ=environ)
    write_secret_files(tmp_path, pw="two")
    after = deploy(tmp_path, SECRETS, environ=environ)
    assert service(before, "web") != service(after, "web")
    digests = [{r.name: r.digest for r in service(d, "web").task.container.secrets} for d in (before, after)]
    assert digests[0]["app_pw"] == sha(b"one") and digests[1]["app_pw"] == sha(b"two")
    assert digests[0]["app_token"] == digests[1]["app_token"]


def test_unreadable_contents_are_reported_together(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          web: {image: busybox}
        secrets:
          pw: {file: ./missing.txt}
          token: {environment: TOKEN}
          bare: {labels: {a: b}}
        configs:
          conf: {environment: CONF}
    """)
    with pytest.raises(StackError) as caught:
        read_contents(project, {})
    assert caught.value.issues == (
        "secrets.bare: has no content: give it `file:`, `environment:` or `content:`, or make it external",
        f"secrets.pw.file: can't read {tmp_path / 'missing.txt'}: No such file or directory",
        "secrets.token.environment: environment variable TOKEN is not set",
        "configs.conf.environment: environment variable CONF is not set",
    )


def test_size_limits(tmp_path: Path) -> None:
    text = """
        services:
          web: {image: busybox, secrets: [big], configs: [large]}
        secrets:
          big: {file: ./big}
        configs:
          large: {file: ./large}
    """
    write(tmp_path, "big", "x" * MAX_SECRET_SIZE)
    write(tmp_path, "large", "x" * MAX_CONFIG_SIZE)
    d = deploy(tmp_path, text)
    assert len(d.secrets[0].data) == 500 * 1024
    write(tmp_path, "big", "x" * (MAX_SECRET_SIZE + 1))
    write(tmp_path, "large", "x" * (MAX_CONFIG_SIZE + 1))
    assert issues(tmp_path, text) == (
        "secrets.big: app_big is 512001 bytes; a secret holds at most 512000 bytes (500 KB)",
        "configs.large: app_large is 1024001 bytes; a config holds at most 1024000 bytes (1000 KB)",
    )


# --- keys the cluster cannot honour ------------------------------------------------------------


def test_unsupported_keys_are_reported_at_once_with_their_location(tmp_path: Path) -> None:
    found = issues(tmp_path, """
        services:
          web:
            image: busybox
            container_name: web1
            privileged: true
            cap_add: [NET_ADMIN]
            network_mode: host
            extra_hosts: ["db.local:10.0.0.5"]
            logging: {driver: syslog}
            pull_policy: always
            init: false
            cap_drop: []
            mem_swappiness: 0
            expose: ["81"]
            x-note: ignored
          db:
            image: busybox
            links: [web]
            sysctls: {net.core.somaxconn: 1024}
            ulimits: {nofile: 1024}
            dns: [8.8.8.8]
    """)
    assert found == (
        "services.db.dns: not supported by the cluster",
        "services.db.links: services reach each other by name on their shared networks; use `networks:`",
        "services.db.sysctls: not supported by the cluster",
        "services.db.ulimits: not supported by the cluster",
        "services.web.cap_add: not supported by the cluster",
        "services.web.container_name: the cluster names each task's container itself (<service>.<slot>.<task id>)",
        "services.web.extra_hosts: not supported by the cluster",
        "services.web.logging: not supported by the cluster",
        "services.web.mem_swappiness: not supported by the cluster",
        "services.web.network_mode: tasks join the stack's overlay networks; use `networks:`",
        "services.web.privileged: not supported by the cluster",
        "services.web.pull_policy: always needs a registry, and the cluster has none; use missing, never or build",
    )


def test_harmless_keys_only_warn(tmp_path: Path) -> None:
    d = deploy(tmp_path, """
        services:
          web: {image: busybox, expose: ["81"], attach: false, pull_policy: missing,
                ports: [{target: 80, app_protocol: http}]}
    """)
    assert d.warnings == (
        "services.web.attach: ignored: `stack deploy` attaches to no container's output",
        "services.web.expose: ignored: a task's ports are reachable by every service on its networks",
        "services.web.ports[0].app_protocol: ignored: the cluster routes ports by protocol and number only",
    )


def test_every_schema_service_key_is_mapped_or_reported(tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).parents[2] / "compose/schema/compose-spec.json").read_text())
    keys = set(schema["definitions"]["service"]["properties"])
    assert SUPPORTED_SERVICE_KEYS <= keys
    assert set(IGNORED_SERVICE_KEYS) <= keys
    project = load(tmp_path, "services:\n  web: {image: busybox}\n")
    refused = sorted(keys - SUPPORTED_SERVICE_KEYS - set(IGNORED_SERVICE_KEYS))
    raw = {**project.services["web"].raw, **{key: "on" for key in refused}}
    project = dataclasses.replace(project, services={"web": build_service("web", raw)})
    with pytest.raises(StackError) as caught:
        map_project(project, images={}, contents={})
    assert [issue.split(":")[0] for issue in caught.value.issues] == [f"services.web.{k}" for k in refused]
    assert "privileged" in refused and "cap_add" in refused and "gpus" in refused


# --- the loader's features reach the mapping ---------------------------------------------------


def test_interpolation_dotenv_profiles_extends_and_include(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TAG=1.2\nPORT=8080\n")
    write(tmp_path, "base.yaml", """
        services:
          base:
            image: busybox:${TAG}
            environment: {FROM_BASE: "yes"}
    """)
    write(tmp_path, "extra/compose.yaml", """
        services:
          included: {image: busybox}
    """)
    d = deploy(tmp_path, """
        include: [extra/compose.yaml]
        services:
          web:
            extends: {file: base.yaml, service: base}
            ports: ["${PORT}:80"]
            environment: {HOME_DIR: "${HOME_DIR:-/home}"}
          debug: {image: busybox, profiles: [debug]}
          tools: {image: busybox, profiles: [tools]}
    """, environ={"TAG": "2.0"}, profiles=["tools"])
    web = service(d, "web")
    assert web.task.container.image == "busybox:2.0"  # the shell wins over .env
    assert web.task.container.env == ("FROM_BASE=yes", "HOME_DIR=/home")
    assert web.endpoint.ports == (PortConfig(target_port=80, published_port=8080),)
    assert sorted(s.name for s in d.services) == ["app_included", "app_tools", "app_web"]


def test_working_dir_is_the_project_directory(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TAG=3\n")
    write(tmp_path, "deploy/compose.yaml", """
        services:
          web: {image: "busybox:${TAG:-none}", volumes: ["./site:/site"]}
    """)
    project = load_stack(stack="app", files=[tmp_path / "deploy/compose.yaml"], environ={}, working_dir=tmp_path)
    d = map_project(project, images={}, contents={})
    assert service(d, "web").task.container.image == "busybox:3"
    assert service(d, "web").task.container.mounts == (
        Mount(type=MountType.BIND, source=str(tmp_path / "site"), target="/site"),)


def test_load_errors_become_stack_errors(tmp_path: Path) -> None:
    with pytest.raises(StackError) as caught:
        load(tmp_path, "services:\n  web: {image: busybox, ports: 5}\n")
    assert caught.value.issues == (f"{tmp_path / 'compose.yaml'}: services.web.ports: must be a list, not 5",)


# --- the API carries it as JSON ----------------------------------------------------------------


def test_round_trip_through_the_model_codec(tmp_path: Path) -> None:
    write_secret_files(tmp_path)
    write(tmp_path, "compose.override.yaml", """
        services:
          web:
            healthcheck: {test: [CMD, "true"], interval: 1s}
            volumes: [data:/data, {type: tmpfs, target: /t, tmpfs: {size: 1k}}]
            ports: ["80:80", {target: 53, protocol: udp, mode: host}]
            networks: {front: {aliases: [www]}}
            depends_on: {db: {condition: service_healthy}}
            deploy:
              replicas: 2
              labels: {team: web}
              placement: {constraints: [node.role==worker], preferences: [{spread: node.labels.zone}]}
              resources: {limits: {cpus: "0.5", memory: 16m}, reservations: {memory: 8m}}
              restart_policy: {condition: on-failure, max_attempts: 2}
              update_config: {order: start-first, failure_action: rollback}
          db: {image: busybox, deploy: {mode: global}}
        networks:
          front: {ipam: {config: [{subnet: 10.1.0.0/24}]}}
        volumes:
          data: {}
    """)
    write(tmp_path, "compose.yaml", SECRETS)
    project = load_stack(stack="app", files=[tmp_path / "compose.yaml", tmp_path / "compose.override.yaml"],
                         environ={"TOKEN": "t", "LEVEL": "x"})
    d = map_project(project, images={"web": "busybox@sha256:00"},
                    contents=read_contents(project, {"TOKEN": "t", "LEVEL": "x"}))
    assert service(d, "web").replicas == 2 and service(d, "db").mode is ServiceMode.GLOBAL
    assert from_dict(StackDeployment, json.loads(json.dumps(to_dict(d)))) == d
