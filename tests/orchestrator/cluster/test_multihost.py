"""Multi-host: overlay networks across lab hosts, service discovery and VIP balancing, the routing mesh,
and `pyswarm stack deploy` of a compose file — on one module-wide cluster of 3 managers (h1-h3) and 2
workers (h4, h5), each host its own engine in its own network namespace. Tests run in file order.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orchestrator.cluster.conftest import Cluster, form_cluster, wait_for
from tests.support.lab import lab_spot

pytestmark = [pytest.mark.privileged, pytest.mark.lab]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
HOSTS = ("h1", "h2", "h3", "h4", "h5")
HTTPD = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with lab_spot() as spot:
        yield form_cluster(spot.up(5), managers=("h1", "h2", "h3"), workers=("h4", "h5"))


def task_of(cluster: Cluster, service: str, node: str) -> tuple[str, str]:
    """(container id, overlay address) of `service`'s running task on host `node`."""
    names = {v: k for k, v in cluster.hostnames("h1").items()}
    for task in cluster.tasks("h1", service):
        if task["NodeID"] == names[node] and task["Status"]["State"] == "running":
            address = task["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
            found = cluster.lab.exec(node, "pynode", "ps", "-q", "--filter",
                                     f"label=com.docker.swarm.task.id={task['ID']}").stdout.split()
            if found:
                return found[0], address
    raise AssertionError(f"no running task of {service} on {node}")


def in_task(cluster: Cluster, node: str, container: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return cluster.lab.exec(node, "pynode", "exec", container, *cmd, timeout=60)


def running(cluster: Cluster, service: str) -> int:
    return sum(cluster.placement("h1", service).values())


def overlay_links(cluster: Cluster, host: str) -> list[str]:
    out = cluster.lab.exec(host, "ip", "-o", "link").stdout
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines()
            if line.split(": ")[1].startswith(("vx-", "ov-"))]


def fetch(url: str, *, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


# --- overlays ------------------------------------------------------------------------------------
def test_tasks_on_two_hosts_share_an_overlay_and_another_overlay_cannot_reach_them(cluster: Cluster) -> None:
    cluster.swarm("h1", "network", "create", "-d", "overlay", "front")
    cluster.swarm("h1", "network", "create", "-d", "overlay", "--subnet", "10.0.200.0/24", "apart")
    inspect = cluster.api("h2").get("/networks/front")
    assert inspect["Driver"] == "overlay" and inspect["Scope"] == "swarm" and inspect["IPAM"]["Config"][0]["Subnet"]
    cluster.swarm("h1", "service", "create", "--name", "pair", "--mode", "global", "--network", "front",
                  "--constraint", "node.role==worker", "busybox", "sh", "-c", HTTPD)
    cluster.swarm("h1", "service", "create", "--name", "loner", "--network", "apart",
                  "--constraint", "node.hostname==h4", "busybox", "sleep", "100000")
    wait_for(lambda: cluster.placement("h1", "pair") == {"h4": 1, "h5": 1}, what="one pair task per worker")
    wait_for(lambda: cluster.placement("h1", "loner") == {"h4": 1}, what="loner on h4")
    on4, addr4 = task_of(cluster, "pair", "h4")
    on5, addr5 = task_of(cluster, "pair", "h5")
    assert in_task(cluster, "h4", on4, "ping", "-c1", "-W2", addr5).returncode == 0
    assert in_task(cluster, "h5", on5, "ping", "-c1", "-W2", addr4).returncode == 0
    # TCP both ways: each answers with its own hostname (the container id)
    assert in_task(cluster, "h4", on4, "wget", "-qO-", f"http://{addr5}/").stdout.strip() == on5[:12]
    assert in_task(cluster, "h5", on5, "wget", "-qO-", f"http://{addr4}/").stdout.strip() == on4[:12]
    # the MTU leaves room for VXLAN's 50 bytes on the lab's 1500-byte underlay
    assert "mtu 1450" in in_task(cluster, "h4", on4, "ip", "link", "show", "eth0").stdout
    # learning off, a static entry per remote task: the device knows h5's VTEP
    vx = [link for link in overlay_links(cluster, "h4") if link.startswith("vx-")]
    assert vx and any("nolearning" in cluster.lab.exec("h4", "ip", "-d", "link", "show", v).stdout for v in vx)
    # another overlay on the same host reaches neither of them
    lonely, _ = task_of(cluster, "loner", "h4")
    assert in_task(cluster, "h4", lonely, "ping", "-c1", "-W2", addr5).returncode != 0
    assert in_task(cluster, "h4", lonely, "timeout", "3", "wget", "-qO-", f"http://{addr4}/").returncode != 0
    # a node takes part only in the overlays its tasks use: no worker task of `pair` runs on h1
    assert not overlay_links(cluster, "h1")


def test_bad_networks_are_refused_and_an_exhausted_subnet_leaves_tasks_waiting(cluster: Cluster) -> None:
    overlap = cluster.swarm("h1", "network", "create", "--subnet", "10.0.200.128/25", "clash", check=False)
    assert overlap.returncode == 1 and "overlaps network apart" in overlap.stderr
    bridge = cluster.swarm("h1", "network", "create", "-d", "bridge", "local", check=False)
    assert bridge.returncode == 1 and "overlay" in bridge.stderr
    dup = cluster.swarm("h2", "network", "create", "front", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert "clash" not in cluster.swarm("h1", "network", "ls").stdout
    cluster.swarm("h1", "network", "create", "--subnet", "10.0.201.0/29", "tiny")  # gateway + 5 addresses
    cluster.swarm("h1", "service", "create", "--name", "crowd", "--replicas", "7", "--network", "tiny",
                  "--endpoint-mode", "dnsrr", "busybox", "sleep", "100000")
    wait_for(lambda: running(cluster, "crowd") == 5, what="5 tasks with addresses")
    waiting = [t for t in cluster.tasks("h1", "crowd") if t["Status"]["State"] == "new"]
    assert len(waiting) == 2 and all("no IP address left on network tiny" in t["Status"]["Err"] for t in waiting)
    assert "no IP address left" in cluster.swarm("h1", "service", "ps", "--no-trunc", "crowd").stdout
    in_use = cluster.swarm("h1", "network", "rm", "tiny", check=False)
    assert in_use.returncode == 1 and "in use by service crowd" in in_use.stderr
    cluster.swarm("h1", "service", "scale", "crowd=4")
    wait_for(lambda: running(cluster, "crowd") == 4 and not [t for t in cluster.tasks("h1", "crowd")
                                                            if t["Status"]["State"] == "new"], what="scaled down")
    cluster.swarm("h1", "service", "rm", "crowd")
    wait_for(lambda: cluster.swarm("h1", "network", "rm", "tiny", check=False).returncode == 0, what="tiny removed")


# --- service discovery and balancing -------------------------------------------------------------
def test_a_service_name_is_its_vip_balanced_over_its_tasks_on_every_host(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "web", "--replicas", "3", "--network", "front",
                  "--constraint", "node.role==manager", "busybox", "sh", "-c", HTTPD)
    wait_for(lambda: cluster.placement("h1", "web") == {"h1": 1, "h2": 1, "h3": 1}, what="web on the managers")
    service = cluster.api("h1").get("/services/web")
    vip = service["Endpoint"]["VirtualIPs"][0]["Addr"].split("/")[0]
    client, _ = task_of(cluster, "pair", "h4")  # another service, on a worker: no web task runs there

    def lookup(name: str) -> set[str]:
        out = in_task(cluster, "h4", client, "nslookup", name, "127.0.0.11").stdout
        return {line.split()[-1] for line in out.splitlines()[2:] if line.startswith("Address")}

    assert wait_for(lambda: lookup("web") == {vip}, what="web resolves to its VIP")
    assert wait_for(lambda: len(lookup("tasks.web")) == 3, what="tasks.web resolves to the 3 tasks")
    answers = [in_task(cluster, "h4", client, "wget", "-qO-", "http://web/").stdout.strip() for _ in range(9)]
    assert len(set(answers)) >= 2, answers  # new connections go round the tasks
    assert all(answers), answers
    # a task that is told to stop leaves the VIP's map: scaled to 1, only one answer remains
    cluster.swarm("h1", "service", "scale", "web=1")
    wait_for(lambda: running(cluster, "web") == 1, what="web scaled to 1")
    wait_for(lambda: len({in_task(cluster, "h4", client, "wget", "-qO-", "http://web/").stdout.strip()
                          for _ in range(4)}) == 1, what="one backend left")


def test_dnsrr_answers_with_the_task_addresses(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "rr", "--replicas", "2", "--network", "front",
                  "--endpoint-mode", "dnsrr", "busybox", "sleep", "100000")
    wait_for(lambda: running(cluster, "rr") == 2, what="rr running")
    addresses = {t["NetworksAttachments"][0]["Addresses"][0].split("/")[0] for t in cluster.tasks("h1", "rr")
                 if t["Status"]["State"] == "running"}
    client, _ = task_of(cluster, "pair", "h5")

    def lookup() -> set[str]:
        out = in_task(cluster, "h5", client, "nslookup", "rr", "127.0.0.11").stdout
        return {line.split()[-1] for line in out.splitlines()[2:] if line.startswith("Address")}

    wait_for(lambda: lookup() == addresses, what="rr resolves to its tasks")
    cluster.swarm("h1", "service", "rm", "rr")


def test_a_port_published_in_ingress_mode_answers_on_every_host(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "update", "--publish-add", "published=18080,target=80", "web")
    cluster.swarm("h1", "service", "scale", "web=2")
    def updated() -> bool:  # a new port in ingress mode replaces the tasks: they join the ingress network too
        tasks = [t for t in cluster.tasks("h1", "web") if t["Status"]["State"] == "running"]
        return len(tasks) == 2 and all(len(t["NetworksAttachments"]) == 2 for t in tasks)

    wait_for(updated, timeout=60, what="web's tasks replaced on the ingress network")
    assert "*:18080->80/tcp" in cluster.swarm("h1", "service", "ls").stdout
    for host in HOSTS:  # every node answers, whether or not a web task runs there
        url = f"http://{cluster.lab.host(host).address}:18080/"
        assert wait_for(lambda url=url: fetch(url).strip(), timeout=20, what=f"ingress on {host}")
    seen = {fetch(f"http://{cluster.lab.host('h4').address}:18080/").strip() for _ in range(8)}
    assert len(seen) == 2, seen  # balanced over both tasks, wherever they run
    clash = cluster.swarm("h1", "service", "create", "--name", "thief", "--publish", "18080:80", "busybox",
                          check=False)
    assert clash.returncode == 1 and "already in use by service web" in clash.stderr
    cluster.swarm("h1", "service", "rm", "web")
    wait_for(lambda: all(cluster.lab.exec(h, "nft", "list", "ruleset").stdout.count("18080") == 0 for h in HOSTS),
             what="the routing mesh's rules gone from every host")


# --- stacks --------------------------------------------------------------------------------------
@pytest.fixture
def shop(tmp_path: Path) -> Path:
    copy = tmp_path / "shop"
    shutil.copytree(EXAMPLES / "shop", copy)
    return copy


def deploy_shop(cluster: Cluster, shop: Path) -> subprocess.CompletedProcess[str]:
    """The example as it is, plus an override (a second -c) placing db on h2 and api on the worker h5: api's
    image is built on h1 and must travel to h5."""
    (shop / "placement.yaml").write_text("""
services:
  db: {deploy: {placement: {constraints: [node.hostname==h2]}}}
  api: {deploy: {placement: {constraints: [node.hostname==h5]}}}
""")
    return cluster.swarm("h1", "stack", "deploy", "-c", str(shop / "compose.yaml"), "-c", str(shop / "placement.yaml"),
                         "shop", timeout=300)


def test_stack_deploy_of_the_shop_example_runs_across_hosts(cluster: Cluster, shop: Path) -> None:
    assert "shop-api" not in cluster.lab.exec("h5", "pynode", "images").stdout
    deployed = deploy_shop(cluster, shop)
    out = deployed.stdout
    for line in ("Creating network shop_default", "Creating secret shop_api_token", "Creating config shop_catalogue",
                 "Creating service shop_db", "Creating service shop_api"):
        assert line in out, out
    assert "shop" in cluster.swarm("h2", "stack", "ls").stdout
    wait_for(lambda: cluster.placement("h1", "shop_api") == {"h5": 1} and cluster.placement("h1", "shop_db") == {
        "h2": 1}, timeout=90, what="shop running on h5 and h2")
    # the image built on the manager h1 reached h5, pinned by its digest
    built = cluster.lab.exec("h1", "pynode", "image", "inspect", "-f", "{{.Id}}", "shop-api").stdout.strip()
    assert cluster.lab.exec("h5", "pynode", "image", "inspect", "-f", "{{.Id}}", "shop-api").stdout.strip() == built
    image = cluster.api("h1").get("/services/shop_api")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith("shop-api:latest@sha256:"), image
    # the api answers through the routing mesh on every host, with the catalogue from db (a config), the
    # token from its secret, and the db reached by its short name on the stack's overlay
    for host in HOSTS:
        url = f"http://{cluster.lab.host(host).address}:8080/cgi-bin/items"
        body = wait_for(lambda url=url: fetch(url, timeout=5), timeout=30, what=f"shop on {host}")
        assert "banana" in body and "token: s3cr..." in body
    services = cluster.swarm("h3", "stack", "services", "shop").stdout
    assert "shop_api" in services and "1/1" in services and "*:8080->80/tcp" in services
    ps = cluster.swarm("h1", "stack", "ps", "shop").stdout
    assert "shop_api.1" in ps and "shop_db.1" in ps
    # task containers carry Swarm's labels on their node
    found = [h for h in HOSTS if cluster.lab.exec(h, "pynode", "ps", "-q", "--filter",
                                                  "label=com.docker.stack.namespace=shop").stdout.split()]
    assert found, "no task container labelled with the stack's namespace"
    # the secret is an in-memory file, readable only inside the task
    node = cluster.placement("h1", "shop_api")
    (api_host,) = node
    container = cluster.lab.exec(api_host, "pynode", "ps", "-q", "--filter",
                                 "label=com.docker.swarm.service.name=shop_api").stdout.split()[0]
    assert in_task(cluster, api_host, container, "cat", "/run/secrets/api_token").stdout == "s3cret-token\n"
    mounts = in_task(cluster, api_host, container, "cat", "/proc/mounts").stdout
    assert any(" /run/secrets/api_token tmpfs ro" in line for line in mounts.splitlines()), mounts
    # the Raft log and snapshots on every manager hold the secret and config sealed, never in the clear
    for manager in ("h1", "h2", "h3"):
        for path in (cluster.lab.host(manager).data_root / "swarm" / "raft").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert b"s3cret-token" not in data and b"banana" not in data, f"{path} holds a secret in the clear"
    # re-deploying the same file changes nothing
    again = deploy_shop(cluster, shop)
    assert "up to date" in again.stdout, again.stdout


def test_a_changed_secret_rolls_only_the_services_that_use_it(cluster: Cluster, shop: Path) -> None:
    before = {t["ID"] for t in cluster.tasks("h1", "shop_db")}
    (shop / "api_token.txt").write_text("n3w-token\n")
    out = deploy_shop(cluster, shop).stdout
    assert "Updating secret shop_api_token" in out and "Updating service shop_api" in out
    assert "shop_db" not in out
    url = f"http://{cluster.lab.host('h2').address}:8080/cgi-bin/items"
    wait_for(lambda: "token: n3w-..." in fetch(url, timeout=5), timeout=60, what="the new secret in use")
    assert {t["ID"] for t in cluster.tasks("h1", "shop_db")} == before  # db was left running


def test_depends_on_holds_a_service_until_its_dependency_is_healthy(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("""
services:
  slow:
    image: busybox
    init: true
    command: sh -c 'sleep 4; touch /tmp/ready; exec sleep 100000'
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/ready"], interval: 1s, retries: 30}
  after:
    image: busybox
    init: true
    command: sleep 100000
    depends_on: {slow: {condition: service_healthy}}
""")
    cluster.swarm("h1", "stack", "deploy", "-c", str(tmp_path / "compose.yaml"), "dep")
    waiting = wait_for(lambda: [t for t in cluster.tasks("h1", "dep_after")
                                if "waiting for service dep_slow to be healthy" in t["Status"]["Err"]],
                       timeout=20, every=0.2, what="after waiting for slow")
    assert waiting[0]["Status"]["State"] == "pending"
    assert running(cluster, "dep_after") == 0
    wait_for(lambda: running(cluster, "dep_slow") == 1, timeout=30, what="slow healthy")
    wait_for(lambda: running(cluster, "dep_after") == 1, timeout=30, what="after started")
    slow = [t for t in cluster.tasks("h1", "dep_slow") if t["Status"]["State"] == "running"][0]
    after = [t for t in cluster.tasks("h1", "dep_after") if t["Status"]["State"] == "running"][0]
    assert after["Status"]["Timestamp"] >= slow["Status"]["Timestamp"]
    cluster.swarm("h1", "stack", "rm", "dep")


def test_bad_stacks_are_refused_and_make_nothing(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("""
services:
  a:
    image: busybox
    privileged: true
    container_name: fixed
  b:
    image: busybox
    secrets: [big]
secrets:
  big: {file: ./big.bin}
""")
    (tmp_path / "big.bin").write_bytes(b"x" * (600 * 1024))
    bad = cluster.swarm("h1", "stack", "deploy", "-c", str(tmp_path / "compose.yaml"), "bad", check=False)
    assert bad.returncode == 1
    for words in ("services.a.privileged", "services.a.container_name", "big"):
        assert words in bad.stderr, bad.stderr
    assert "bad" not in cluster.swarm("h1", "stack", "ls").stdout
    assert not [n for n in cluster.api("h1").get("/networks") if n["Name"].startswith("bad_")]
    assert not [s for s in cluster.api("h1").get("/secrets") if s["Spec"]["Name"].startswith("bad_")]
    worker = cluster.swarm("h4", "stack", "deploy", "-c", str(tmp_path / "compose.yaml"), "bad", check=False)
    assert worker.returncode == 1 and "not a swarm manager" in worker.stderr


def test_stack_rm_removes_everything_and_hosts_keep_no_overlay_state(cluster: Cluster) -> None:
    for service in ("pair", "loner"):
        cluster.swarm("h1", "service", "rm", service)
    cluster.swarm("h1", "network", "rm", "front", "apart")
    out = cluster.swarm("h1", "stack", "rm", "shop").stdout
    for line in ("Removing service shop_api", "Removing service shop_db", "Removing secret shop_api_token",
                 "Removing config shop_catalogue", "Removing network shop_default"):
        assert line in out, out
    api = cluster.api("h1")
    assert not [s for s in api.get("/services") if s["Spec"]["Name"].startswith("shop_")]
    assert [n["Name"] for n in api.get("/networks")] == ["ingress"]
    assert not api.get("/secrets") and not api.get("/configs") and not api.get("/stacks")

    def clean(host: str) -> bool:
        ruleset = cluster.lab.exec(host, "nft", "list", "ruleset").stdout
        return (not overlay_links(cluster, host) and not cluster.containers(host)
                and "10.0." not in ruleset and ":8080" not in ruleset and "dport 8080" not in ruleset)

    for host in HOSTS:
        wait_for(lambda host=host: clean(host), timeout=30, what=f"no overlay state left on {host}")
    time.sleep(2)
    assert all(clean(h) for h in HOSTS)
