"""The agent's create request for a task (agent/executor.py): overlays, secret and config files, mounts."""

from __future__ import annotations

from orchestrator.agent.executor import (
    LABEL_NODE_ID,
    LABEL_SERVICE_NAME,
    LABEL_TASK_ID,
    Assignment,
    Work,
    create_body,
    file_target,
    files_of,
    networking_of,
    work_from,
)
from orchestrator.model import (
    ContainerSpec,
    FileReference,
    Mount,
    MountType,
    NetworkAttachment,
    PortConfig,
    PublishMode,
    Task,
    TaskSpec,
    to_dict,
)


def task(container: ContainerSpec | None = None, *, networks: tuple[NetworkAttachment, ...] = (),
         ports: tuple[PortConfig, ...] = ()) -> Task:
    return Task(id="t1", service_id="s1", slot=1, spec=TaskSpec(container=container or ContainerSpec(image="busybox")),
                networks=networks, ports=ports)


SECRET = FileReference(id="sec1", name="app_db_password", target="db_password", uid="100", gid="101", mode=0o400)
CONFIG = FileReference(id="cfg1", name="app_nginx", target="/etc/nginx/nginx.conf")
NAMES = {"nb": "app_back", "ing": "ingress"}


# --- file_target ------------------------------------------------------------------------------------------
def test_a_secrets_plain_name_goes_under_run_secrets() -> None:
    assert file_target(SECRET, secret=True) == "/run/secrets/db_password"


def test_absolute_targets_are_kept() -> None:
    assert file_target(CONFIG, secret=False) == "/etc/nginx/nginx.conf"
    assert file_target(FileReference(name="s", target="/etc/ssl/key.pem"), secret=True) == "/etc/ssl/key.pem"


def test_a_relative_config_target_is_taken_from_root() -> None:
    assert file_target(FileReference(name="c", target="app.conf"), secret=False) == "/app.conf"


# --- files_of ---------------------------------------------------------------------------------------------
def test_files_of_lists_secrets_then_configs_with_owner_and_mode() -> None:
    t = task(ContainerSpec(image="busybox", secrets=(SECRET,), configs=(CONFIG,)))
    files, why = files_of(t, Work(secrets={"sec1": "czNjcjN0"}, configs={"cfg1": "Y29uZg=="}))
    assert why == ""
    assert files == [
        {"Target": "/run/secrets/db_password", "Data": "czNjcjN0", "UID": "100", "GID": "101", "Mode": 0o400},
        {"Target": "/etc/nginx/nginx.conf", "Data": "Y29uZg==", "UID": "0", "GID": "0", "Mode": 0o444},
    ]


def test_files_of_says_which_content_is_missing() -> None:
    t = task(ContainerSpec(image="busybox", secrets=(SECRET,), configs=(CONFIG,)))
    assert files_of(t, Work(configs={"cfg1": "eA=="})) == ([], "secret app_db_password not found")
    assert files_of(t, Work(secrets={"sec1": "eA=="})) == ([], "config app_nginx not found")
    # a config's content does not stand in for a secret of the same id
    assert files_of(t, Work(configs={"sec1": "eA==", "cfg1": "eA=="}))[1] == "secret app_db_password not found"


def test_empty_owner_fields_default_to_root() -> None:
    t = task(ContainerSpec(image="busybox", secrets=(FileReference(id="s", name="s", target="s", uid="", gid=""),)))
    files, _ = files_of(t, Work(secrets={"s": ""}))
    assert (files[0]["UID"], files[0]["GID"], files[0]["Data"]) == ("0", "0", "")


def test_a_task_without_files_has_none() -> None:
    assert files_of(task(), Work()) == ([], "")


# --- networking_of ----------------------------------------------------------------------------------------
def test_networking_of_gives_each_overlay_its_address_by_name() -> None:
    t = task(networks=(NetworkAttachment(network_id="nb", addresses=("10.0.1.5/24",)),
                       NetworkAttachment(network_id="ing", addresses=("10.0.0.7/24",))))
    assert networking_of(t, NAMES) == ({"app_back": {"IPAMConfig": {"IPv4Address": "10.0.1.5"}},
                                        "ingress": {"IPAMConfig": {"IPv4Address": "10.0.0.7"}}}, "")


def test_networking_of_an_unknown_network_says_so() -> None:
    t = task(networks=(NetworkAttachment(network_id="nb", addresses=("10.0.1.5/24",)),
                       NetworkAttachment(network_id="nx", addresses=("10.0.9.5/24",))))
    assert networking_of(t, NAMES) == ({}, "network nx is not known on this node yet")


def test_networking_of_an_attachment_without_address_leaves_ipam_to_the_engine() -> None:
    t = task(networks=(NetworkAttachment(network_id="nb"),))
    assert networking_of(t, NAMES) == ({"app_back": {"IPAMConfig": None}}, "")


# --- create_body ------------------------------------------------------------------------------------------
def test_create_body_joins_the_first_network_and_carries_every_endpoint() -> None:
    t = task(networks=(NetworkAttachment(network_id="nb", addresses=("10.0.1.5/24",)),
                       NetworkAttachment(network_id="ing", addresses=("10.0.0.7/24",))))
    endpoints, _ = networking_of(t, NAMES)
    body = create_body(Assignment(task=t, service_name="app_web"), "node1", endpoints=endpoints)
    assert body["HostConfig"]["NetworkMode"] == "app_back"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {
        "app_back": {"IPAMConfig": {"IPv4Address": "10.0.1.5"}},
        "ingress": {"IPAMConfig": {"IPv4Address": "10.0.0.7"}}}}
    assert body["Labels"][LABEL_TASK_ID] == "t1" and body["Labels"][LABEL_SERVICE_NAME] == "app_web"
    assert body["Labels"][LABEL_NODE_ID] == "node1"


def test_create_body_without_networks_leaves_the_engines_default() -> None:
    body = create_body(Assignment(task=task(), service_name="web"), "node1")
    assert "NetworkMode" not in body["HostConfig"] and "NetworkingConfig" not in body
    assert "Files" not in body["HostConfig"] and "ReadonlyRootfs" not in body["HostConfig"]


def test_create_body_carries_the_files() -> None:
    t = task(ContainerSpec(image="busybox", secrets=(SECRET,)))
    files, _ = files_of(t, Work(secrets={"sec1": "czNjcjN0"}))
    body = create_body(Assignment(task=t, service_name="web"), "node1", files=files)
    assert body["HostConfig"]["Files"] == files
    assert body["HostConfig"]["Files"] is not files  # a copy the caller can't change afterwards


def test_create_body_read_only_root_and_tmpfs_options() -> None:
    mounts = (Mount(type=MountType.TMPFS, target="/tmp", tmpfs_size_bytes=1 << 20, tmpfs_mode=0o1700),
              Mount(type=MountType.TMPFS, target="/run"),
              Mount(type=MountType.TMPFS, target="/cache", tmpfs_mode=0o700),
              Mount(type=MountType.VOLUME, source="data", target="/data", read_only=True))
    body = create_body(Assignment(task=task(ContainerSpec(image="busybox", read_only=True, mounts=mounts)),
                                  service_name="web"), "node1")
    assert body["HostConfig"]["ReadonlyRootfs"] is True
    assert body["HostConfig"]["Mounts"] == [
        {"Type": "tmpfs", "Source": "", "Target": "/tmp", "ReadOnly": False,
         "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1700}},
        {"Type": "tmpfs", "Source": "", "Target": "/run", "ReadOnly": False},
        {"Type": "tmpfs", "Source": "", "Target": "/cache", "ReadOnly": False, "TmpfsOptions": {"Mode": 0o700}},
        {"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": True},
    ]


def test_create_body_binds_only_host_mode_ports() -> None:
    ports = (PortConfig(target_port=80, published_port=8080),
             PortConfig(target_port=22, published_port=2222, publish_mode=PublishMode.HOST),
             PortConfig(target_port=23, publish_mode=PublishMode.HOST))
    body = create_body(Assignment(task=task(ports=ports), service_name="web"), "node1")
    assert body["HostConfig"]["PortBindings"] == {"22/tcp": [{"HostPort": "2222"}], "23/tcp": [{"HostPort": ""}]}


def test_work_from_reads_a_session_reply() -> None:
    t = task(ContainerSpec(image="busybox", secrets=(SECRET,)))
    reply = {"tasks": [{"task": to_dict(t), "service_name": "web"}],
             "networks": [{"id": "nb", "name": "app_back"}], "secrets": {"sec1": "eA=="}, "configs": {}}
    work = work_from(reply)
    assert work.assignments == (Assignment(task=t, service_name="web"),)
    assert work.network_names() == {"nb": "app_back"}
    assert files_of(t, work) == ([{"Target": "/run/secrets/db_password", "Data": "eA==", "UID": "100", "GID": "101",
                                   "Mode": 0o400}], "")
