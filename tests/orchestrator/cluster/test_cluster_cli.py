"""What `pyswarm` users check command by command against `docker swarm/node/service`: node update,
inspect and availability, `node ls` for a crashed or departed manager, `-H`, the service commands'
output, the create options as the task containers on the nodes show them, rolling updates watched while
they run, an agent failing over to a new leader, and the control API's docs.

One module-wide cluster on lab hosts: h1-h3 managers, h4 a worker, heartbeats every second. Tests run in
file order; each removes its services. The last ones kill the leader and make a manager leave.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.orchestrator.cluster.conftest import Cluster, form_cluster, wait_for
from tests.support.lab import PYSWARM, lab_spot

pytestmark = [pytest.mark.privileged, pytest.mark.lab]
HOSTS = ("h1", "h2", "h3", "h4")
MANAGERS = ("h1", "h2", "h3")
SLEEP = ("busybox", "sleep", "100000")
HTTPD = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with lab_spot() as spot:
        yield form_cluster(spot.up(len(HOSTS)), managers=MANAGERS, workers=("h4",))


# --- helpers -------------------------------------------------------------------------------------------
def node_ls(cluster: Cluster, host: str) -> dict[str, list[str]]:
    """`node ls` on `host`: hostname -> [STATUS, AVAILABILITY, MANAGER STATUS...], and '*' marks the caller."""
    lines = cluster.swarm(host, "node", "ls").stdout.splitlines()
    assert lines[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS"]
    rows = {}
    for line in lines[1:]:
        me = " * " in line
        cells = line.replace(" * ", "   ").split()
        rows[cells[1]] = cells[2:] + (["*"] if me else [])
    return rows


def ps_rows(cluster: Cluster, host: str, service: str, *args: str) -> list[list[str]]:
    """`service ps` split on runs of 3+ spaces (cells such as 'Running 3 seconds ago' keep their words)."""
    import re

    lines = cluster.swarm(host, "service", "ps", service, *args).stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "IMAGE", "NODE"]
    return [re.split(r"\s{3,}", line.strip()) for line in lines[1:]]


def all_tasks(cluster: Cluster, service: str, host: str = "h1") -> list[dict[str, Any]]:
    return cluster.tasks(host, service, running=False)


def running_tasks(cluster: Cluster, service: str, host: str = "h1") -> list[dict[str, Any]]:
    return [t for t in cluster.tasks(host, service) if t["Status"]["State"] == "running"]


def node_of(cluster: Cluster, task: dict[str, Any], host: str = "h1") -> str:
    return cluster.hostnames(host)[task["NodeID"]]


def container_of(cluster: Cluster, task: dict[str, Any], host: str = "h1") -> dict[str, Any]:
    """`pynode inspect` of the task's container, on the node that runs it."""
    node = node_of(cluster, task, host)
    ids = cluster.lab.exec(node, "pynode", "ps", "-aq", "--filter",
                           f"label=com.docker.swarm.task.id={task['ID']}").stdout.split()
    assert len(ids) == 1, f"task {task['ID']} on {node}: containers {ids}"
    found = cluster.lab.exec(node, "pynode", "inspect", ids[0])
    assert found.returncode == 0, found.stderr
    return dict(json.loads(found.stdout)[0])


def when(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def fetch(url: str, *, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def remove(cluster: Cluster, *services: str) -> None:
    cluster.swarm("h1", "service", "rm", *services)
    prefixes = tuple(f"{s}." for s in services)
    wait_for(lambda: not any(c.startswith(prefixes) for h in HOSTS for c in cluster.containers(h)),
             what=f"containers of {services} removed")


# --- nodes ---------------------------------------------------------------------------------------------
def test_node_labels_are_added_and_removed_and_inspect_shows_dockers_fields(cluster: Cluster) -> None:
    out = cluster.swarm("h1", "node", "update", "--label-add", "zone=a", "--label-add", "disk=ssd", "h2")
    node_id = out.stdout.strip()
    assert cluster.api("h3").get("/nodes/h2")["Spec"]["Labels"] == {"zone": "a", "disk": "ssd"}
    cluster.swarm("h1", "node", "update", "--label-rm", "zone", "h2")
    assert cluster.api("h1").get("/nodes/h2")["Spec"]["Labels"] == {"disk": "ssd"}
    gone = cluster.swarm("h1", "node", "update", "--label-rm", "zone", "h2", check=False)
    assert gone.returncode == 1 and "zone" in gone.stderr and "doesn't exist" in gone.stderr

    both = json.loads(cluster.swarm("h2", "node", "inspect", "h2", node_id[:6], "h4").stdout)
    assert [n["Description"]["Hostname"] for n in both] == ["h2", "h2", "h4"]
    manager, _, worker = both
    assert manager["ID"] == node_id and len(node_id) == 25
    assert manager["Spec"] == {"Role": "manager", "Availability": "active", "Labels": {"disk": "ssd"}}
    assert manager["Status"]["State"] == "ready" and manager["Status"]["Addr"] == cluster.lab.host("h2").address
    assert manager["ManagerStatus"]["Reachability"] == "reachable"
    assert worker["Spec"]["Role"] == "worker" and "ManagerStatus" not in worker
    mine = json.loads(cluster.swarm("h2", "node", "inspect", "self").stdout)
    assert [n["ID"] for n in mine] == [node_id]
    pretty = cluster.swarm("h1", "node", "inspect", "--pretty", "h4").stdout
    assert "Hostname:" in pretty and "h4" in pretty and "Ready" in pretty
    unknown = cluster.swarm("h1", "node", "inspect", "h2", "nosuchnode", check=False)
    assert unknown.returncode == 1 and "nosuchnode not found" in unknown.stderr
    cluster.swarm("h1", "node", "update", "--label-rm", "disk", "h2")
    assert cluster.api("h1").get("/nodes/h2")["Spec"]["Labels"] == {}


def test_a_paused_node_keeps_its_tasks_and_gets_no_new_ones(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "steady", "--replicas", "4", *SLEEP)
    wait_for(lambda: cluster.placement("h1", "steady") == {h: 1 for h in HOSTS}, what="one task per node")
    on_h4 = [t["ID"] for t in running_tasks(cluster, "steady") if node_of(cluster, t) == "h4"]
    cluster.swarm("h1", "node", "update", "--availability", "pause", "h4")
    assert node_ls(cluster, "h2")["h4"][:2] == ["Ready", "Pause"]
    cluster.swarm("h1", "service", "scale", "steady=7")
    wait_for(lambda: sum(cluster.placement("h1", "steady").values()) == 7, what="7 running")
    assert cluster.placement("h1", "steady") == {"h1": 2, "h2": 2, "h3": 2, "h4": 1}
    assert [t["ID"] for t in running_tasks(cluster, "steady") if node_of(cluster, t) == "h4"] == on_h4
    # a task that can only go to the paused node waits, and says why
    cluster.swarm("h1", "service", "create", "--name", "pinned", "--constraint", "node.hostname==h4", *SLEEP)
    task = wait_for(lambda: [t for t in all_tasks(cluster, "pinned") if t["Status"]["Err"]], what="a reason")[0]
    assert task["Status"]["State"] == "pending"
    assert task["Status"]["Err"] == "no suitable node (3 nodes did not satisfy the constraints; 1 node is paused)"
    row = ps_rows(cluster, "h2", "pinned", "--no-trunc")[0]  # no NODE cell: desired, current state, error
    assert row[3] == "Running" and row[4].startswith("Pending") and row[5] == task["Status"]["Err"], row
    cluster.swarm("h1", "node", "update", "--availability", "active", "h4")
    wait_for(lambda: cluster.placement("h1", "pinned") == {"h4": 1}, what="pinned placed once h4 is active")
    assert node_ls(cluster, "h1")["h4"][:2] == ["Ready", "Active"]
    remove(cluster, "steady", "pinned")


def test_a_killed_manager_is_unreachable_in_node_ls(cluster: Cluster) -> None:
    leader = cluster.leader("h1")
    victim = next(h for h in MANAGERS if h != leader)
    watcher = next(h for h in MANAGERS if h not in (leader, victim))
    cluster.lab.kill(victim)
    # Docker: STATUS Down (after the missed heartbeats), MANAGER STATUS Unreachable
    wait_for(lambda: node_ls(cluster, watcher)[victim] == ["Down", "Active", "Unreachable"], timeout=15,
             what=f"{victim} down and unreachable")
    assert node_ls(cluster, leader)[victim] == ["Down", "Active", "Unreachable"]
    cluster.lab.start(victim)
    wait_for(lambda: node_ls(cluster, leader)[victim] == ["Ready", "Active", "Reachable"], timeout=30,
             what=f"{victim} back")
    wait_for(lambda: node_ls(cluster, victim)[victim] == ["Ready", "Active", "Reachable", "*"], what="its own view")


def test_dash_h_from_the_root_namespace_acts_as_that_node(cluster: Cluster) -> None:
    def pyswarm(host: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYSWARM, "-H", cluster.lab.host(host).url, *args], capture_output=True, text=True,
                              timeout=60, check=False)

    out = pyswarm("h2", "node", "ls")
    assert out.returncode == 0, out.stderr
    marked = [line.split()[2] for line in out.stdout.splitlines()[1:] if " * " in line]
    assert marked == ["h2"]
    mine = json.loads(pyswarm("h3", "node", "inspect", "self").stdout)
    assert mine[0]["Description"]["Hostname"] == "h3"
    worker = pyswarm("h4", "node", "ls")
    assert worker.returncode == 1 and "not a swarm manager" in worker.stderr
    info = subprocess.run([str(cluster.lab.pynode), "-H", cluster.lab.host("h4").url, "info"], capture_output=True,
                          text=True, timeout=60, check=False).stdout
    assert "Swarm: active" in info and "Is Manager: false" in info


# --- services: what ls, inspect and ps show ------------------------------------------------------------------
def test_create_options_reach_the_task_container(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "web", "--env", "GREETING=hello", "--env", "LEVEL=2",
                  "--mount", "type=volume,source=data,target=/data",
                  "--publish", "mode=host,target=80,published=18090",
                  "--limit-memory", "64M", "--limit-cpu", "0.5", "--reserve-memory", "16M", "--reserve-cpu", "0.25",
                  "busybox", "sh", "-c", f"echo kept > /data/mark; {HTTPD}")
    task = wait_for(lambda: running_tasks(cluster, "web"), what="web running")[0]
    node = node_of(cluster, task)
    container = container_of(cluster, task)
    assert {"GREETING=hello", "LEVEL=2"} <= set(container["Config"]["Env"])
    mounts = [m for m in container["Mounts"] if m["Destination"] == "/data"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Name"] == "data"
    assert "data" in cluster.lab.exec(node, "pynode", "volume", "ls", "-q").stdout.split()
    assert cluster.lab.exec(node, "pynode", "exec", container["Id"], "cat", "/data/mark").stdout.strip() == "kept"
    assert container["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert container["HostConfig"]["NanoCpus"] == 500_000_000
    # the host-mode port answers on the task's node only
    address = cluster.lab.host(node).address
    assert wait_for(lambda: fetch(f"http://{address}:18090/"), what="httpd on the task's node").strip() \
        == container["Id"][:12]
    for other in (h for h in HOSTS if h != node):
        with pytest.raises((urllib.error.URLError, ConnectionError, TimeoutError)):
            fetch(f"http://{cluster.lab.host(other).address}:18090/", timeout=2)

    lines = cluster.swarm("h2", "service", "ls").stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    service_id = cluster.api("h1").get("/services/web")["ID"]
    assert [line.split() for line in lines[1:]] == [[service_id[:12], "web", "replicated", "1/1", "busybox",
                                                     "*:18090->80/tcp"]]
    assert cluster.swarm("h3", "service", "ls", "-q").stdout.split() == [service_id]

    shown = json.loads(cluster.swarm("h3", "service", "inspect", "web").stdout)
    assert len(shown) == 1 and shown[0]["ID"] == service_id
    spec = shown[0]["Spec"]
    assert spec["Name"] == "web" and spec["Mode"] == {"Replicated": {"Replicas": 1}}
    container_spec = spec["TaskTemplate"]["ContainerSpec"]
    assert container_spec["Image"] == "busybox" and container_spec["Env"] == ["GREETING=hello", "LEVEL=2"]
    assert container_spec["Mounts"] == [{"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": False}]
    assert spec["TaskTemplate"]["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20},
                                                 "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 16 << 20}}
    assert spec["EndpointSpec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 18090,
                                              "PublishMode": "host"}]
    unknown = cluster.swarm("h1", "service", "inspect", "web", "nosuchservice", check=False)
    assert unknown.returncode == 1 and "nosuchservice not found" in unknown.stderr
    remove(cluster, "web")


def test_a_reservation_no_node_can_give_leaves_the_task_pending(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "greedy", "--reserve-cpu", "64", *SLEEP)
    task = wait_for(lambda: [t for t in all_tasks(cluster, "greedy") if t["Status"]["Err"]], what="a reason")[0]
    assert task["Status"]["State"] == "pending" and task["Status"]["Err"] == "no suitable node (4 nodes lacked CPU)"
    assert "no suitable node (4 nodes lacked CPU)" in cluster.swarm("h2", "service", "ps", "greedy").stdout
    cluster.swarm("h1", "service", "update", "--reserve-cpu", "0.1", "greedy")
    wait_for(lambda: len(running_tasks(cluster, "greedy")) == 1, what="placed once it fits")
    remove(cluster, "greedy")


def test_placement_preference_spreads_over_zone_values(cluster: Cluster) -> None:
    zones = {"h1": "a", "h2": "b", "h3": "b", "h4": "b"}
    for host, zone in zones.items():
        cluster.swarm("h1", "node", "update", "--label-add", f"zone={zone}", host)
    cluster.swarm("h1", "service", "create", "--name", "zoned", "--replicas", "4",
                  "--placement-pref", "spread=node.labels.zone", *SLEEP)
    wait_for(lambda: sum(cluster.placement("h1", "zoned").values()) == 4, what="4 running")
    placed = cluster.placement("h1", "zoned")
    per_zone = {"a": 0, "b": 0}
    for host, count in placed.items():
        per_zone[zones[host]] += count
    assert per_zone == {"a": 2, "b": 2} and placed["h1"] == 2, placed  # spread over nodes alone would be 1/1/1/1
    spec = cluster.api("h1").get("/services/zoned")["Spec"]["TaskTemplate"]["Placement"]
    assert spec["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
    remove(cluster, "zoned")
    for host in zones:
        cluster.swarm("h1", "node", "update", "--label-rm", "zone", host)


def test_on_failure_restarts_exactly_max_attempts_times_after_the_delay(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "flaky", "--restart-condition", "on-failure",
                  "--restart-max-attempts", "2", "--restart-delay", "1s", "busybox", "sh", "-c", "exit 3")

    def failed() -> list[dict[str, Any]]:
        return [t for t in all_tasks(cluster, "flaky") if t["Status"]["State"] == "failed"]

    # the first run, then exactly two restarts (Docker counts restarts, not failures)

    deadline = time.monotonic() + 30
    while len(failed()) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(4)  # several restart delays: nothing more starts
    tasks = sorted(all_tasks(cluster, "flaky"), key=lambda t: when(t["CreatedAt"]))
    assert [t["Status"]["State"] for t in tasks] == ["failed"] * 3, [t["Status"] for t in tasks]
    assert "exit (3)" in tasks[0]["Status"]["Err"]
    for before, after in zip(tasks, tasks[1:], strict=False):
        assert when(after["CreatedAt"]) - when(before["Status"]["Timestamp"]) >= 0.9  # --restart-delay 1s
    assert all(t["DesiredState"] == "shutdown" for t in tasks)  # as SwarmKit's restart supervisor leaves them
    assert not cluster.swarm("h1", "service", "ps", "-q", "--filter", "desired-state=running", "flaky").stdout.split()
    listed = [line.split() for line in cluster.swarm("h1", "service", "ls").stdout.splitlines()[1:]]
    assert [row[1:4] for row in listed if row[1] == "flaky"] == [["flaky", "replicated", "0/1"]]
    remove(cluster, "flaky")


def test_start_first_runs_the_new_task_before_the_old_one_stops(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "overlap", "--update-order", "start-first",
                  "--stop-grace-period", "3s", "busybox", "sh", "-c", "trap '' TERM; sleep 100000")
    old = wait_for(lambda: running_tasks(cluster, "overlap"), what="running")[0]
    cluster.swarm("h1", "service", "update", "--env-add", "V=2", "overlap")
    seen_both = False

    def replaced() -> bool:
        nonlocal seen_both
        tasks = {t["ID"]: t for t in all_tasks(cluster, "overlap")}
        new = [t for t in tasks.values() if t["ID"] != old["ID"] and t["Status"]["State"] == "running"]
        if new and tasks[old["ID"]]["Status"]["State"] == "running":
            seen_both = True
        return bool(new) and tasks[old["ID"]]["Status"]["State"] == "shutdown"

    wait_for(replaced, timeout=40, every=0.2, what="the old task shut down")
    assert seen_both, "the new task never ran beside the old one"
    tasks = {t["ID"]: t for t in all_tasks(cluster, "overlap")}
    new = next(t for t in tasks.values() if t["ID"] != old["ID"])
    assert when(new["Status"]["Timestamp"]) < when(tasks[old["ID"]]["Status"]["Timestamp"])
    assert cluster.api("h1").get("/services/overlap")["Spec"]["UpdateConfig"]["Order"] == "start-first"
    remove(cluster, "overlap")


def test_rolling_update_replaces_one_task_at_a_time_then_rollback_restores_it(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "roll", "--replicas", "3", "--update-parallelism", "1",
                  "--update-delay", "1s", "--env", "V=1", *SLEEP)
    wait_for(lambda: len(running_tasks(cluster, "roll")) == 3, what="3 running")
    first = {t["ID"] for t in all_tasks(cluster, "roll")}
    cluster.swarm("h2", "service", "update", "--env-add", "V=2", "roll")

    def slots() -> dict[int, str]:
        """Each slot: 'old' or 'new' when one task of that spec runs and nothing else is live, else 'moving'."""
        by_slot: dict[int, list[dict[str, Any]]] = {}
        for task in all_tasks(cluster, "roll"):
            by_slot.setdefault(task["Slot"], []).append(task)
        shown = {}
        for slot, tasks in by_slot.items():
            active = [t for t in tasks if t["Status"]["State"] not in ("shutdown", "failed", "complete", "rejected")]
            settled = len(active) == 1 and active[0]["Status"]["State"] == "running" \
                and active[0]["DesiredState"] == "running"
            shown[slot] = ("new" if "V=2" in active[0]["Spec"]["ContainerSpec"]["Env"] else "old") if settled \
                else "moving"
        return shown

    samples = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        samples.append(slots())
        if samples[-1] == {1: "new", 2: "new", 3: "new"}:
            break
        time.sleep(0.15)
    assert samples[-1] == {1: "new", 2: "new", 3: "new"}, samples[-1]
    assert max(list(s.values()).count("moving") for s in samples) == 1, samples
    assert any(list(s.values()).count("new") == 1 for s in samples)  # one slot at a time, observed in between
    started = sorted(when(t["Status"]["Timestamp"]) for t in running_tasks(cluster, "roll"))
    assert all(b - a >= 0.9 for a, b in zip(started, started[1:], strict=False)), started  # --update-delay 1s
    status = cluster.api("h1").get("/services/roll")["UpdateStatus"]
    assert status["State"] == "completed" and status["CompletedAt"]

    out = cluster.swarm("h3", "service", "rollback", "roll")
    assert out.returncode == 0
    wait_for(lambda: cluster.api("h1").get("/services/roll")["UpdateStatus"]["State"] == "rollback_completed",
             timeout=60, what="rollback completed")
    service = cluster.api("h1").get("/services/roll")
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] == ["V=1"]
    assert service["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Env"] == ["V=2"]
    wait_for(lambda: len(running_tasks(cluster, "roll")) == 3, what="3 running after rollback")
    assert all(t["Spec"]["ContainerSpec"]["Env"] == ["V=1"] for t in running_tasks(cluster, "roll"))

    # service ps: history and its filters, -q, --no-trunc
    everything = all_tasks(cluster, "roll")
    live_ids = {t["ID"] for t in everything if t["DesiredState"] == "running"}
    done_ids = {t["ID"] for t in everything if t["DesiredState"] == "shutdown"}
    assert len(live_ids) == 3 and len(done_ids) == 6 and first <= done_ids

    def quiet(*args: str) -> list[str]:
        return cluster.swarm("h2", "service", "ps", "-q", "--no-trunc", *args, "roll").stdout.split()

    assert set(quiet("--filter", "desired-state=running")) == live_ids
    assert set(quiet("--filter", "desired-state=shutdown")) == done_ids
    assert set(quiet("--filter", "desired-state=accepted")) == live_ids
    assert sorted(quiet()) == sorted(live_ids | done_ids)
    short = cluster.swarm("h2", "service", "ps", "-q", "roll").stdout.split()
    assert len(short) == 9 and all(len(i) == 12 for i in short) and {i[:12] for i in live_ids | done_ids} == set(short)
    rows = ps_rows(cluster, "h2", "roll", "--no-trunc", "--filter", "desired-state=running")
    assert sorted(r[0] for r in rows) == sorted(live_ids)
    assert sorted(r[1] for r in rows) == ["roll.1", "roll.2", "roll.3"]
    assert all(r[4] == "Running" and r[5].startswith("Running") for r in rows)
    rows = ps_rows(cluster, "h2", "roll")
    assert all(len(r[0]) == 12 for r in rows)
    assert sum(1 for r in rows if r[1].startswith("\\_ roll.")) == 6  # history under each slot's current task
    bad = cluster.swarm("h1", "service", "ps", "--filter", "desired-state=sleeping", "roll", check=False)
    assert bad.returncode == 1 and "desired-state" in bad.stderr
    remove(cluster, "roll")


def test_the_control_api_serves_openapi_docs(cluster: Cluster) -> None:
    page = cluster.api("h2").get("/docs")
    assert isinstance(page, str) and "swagger-ui" in page.lower() and "/openapi.json" in page
    schema = cluster.api("h2").get("/openapi.json")
    assert schema["info"]["title"] == "pyswarm control API"
    assert {"/nodes", "/services", "/tasks", "/swarm"} <= set(schema["paths"])


# --- failover and leaving --------------------------------------------------------------------------------
def test_an_agent_fails_over_to_the_new_leader_and_keeps_its_tasks(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "onworker", "--replicas", "2",
                  "--constraint", "node.role==worker", *SLEEP)
    wait_for(lambda: cluster.placement("h1", "onworker") == {"h4": 2}, what="2 tasks on h4")
    before = sorted(t["ID"] for t in running_tasks(cluster, "onworker"))
    containers = sorted(c for c in cluster.containers("h4") if c.startswith("onworker."))
    old = cluster.leader("h1")
    others = [h for h in MANAGERS if h != old]
    cluster.lab.kill(old)  # the agents' dispatcher is the leader's
    new = wait_for(lambda: cluster.leader(others[0]) not in ("", old) and cluster.leader(others[0]),
                   timeout=10, every=0.2, what="a new leader")
    wait_for(lambda: node_ls(cluster, new)["h4"] == ["Ready", "Active"], what="h4 ready under the new leader")
    time.sleep(4)  # more than 3 heartbeats: h4 must stay ready, its tasks where they are
    assert node_ls(cluster, new)["h4"] == ["Ready", "Active"]
    assert sorted(t["ID"] for t in running_tasks(cluster, "onworker", new)) == before
    assert sorted(c for c in cluster.containers("h4") if c.startswith("onworker.")) == containers
    assert len(cluster.tasks(new, "onworker")) == 2
    cluster.lab.start(old)
    wait_for(lambda: node_ls(cluster, new)[old] == ["Ready", "Active", "Reachable"], timeout=30,
             what="old leader back")
    cluster.swarm(new, "service", "rm", "onworker")
    wait_for(lambda: not any(c.startswith("onworker.") for c in cluster.containers("h4")), what="removed")


def test_a_manager_that_leaves_with_force_is_down_in_node_ls(cluster: Cluster) -> None:
    leader = cluster.leader("h1")
    leaving = next(h for h in MANAGERS if h != leader)
    refused = cluster.swarm(leaving, "leave", check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr
    out = cluster.swarm(leaving, "leave", "--force")
    assert out.stdout.strip() == "Node left the swarm."
    assert "Swarm: inactive" in cluster.lab.exec(leaving, "pynode", "info").stdout
    # The node stays listed, Down, until it is demoted and removed, as in Docker. Docker's MANAGER STATUS then
    # says Unreachable: its leave does not reconfigure Raft, the member stays and counts against the quorum.
    # Here the leaving manager takes itself out of the Raft members first, so its status is Unknown.
    wait_for(lambda: node_ls(cluster, leader)[leaving][:2] == ["Down", "Active"], timeout=15, what="down")
    assert node_ls(cluster, leader)[leaving] == ["Down", "Active", "Unknown"]
    assert node_ls(cluster, next(h for h in MANAGERS if h not in (leader, leaving)))[leaving][:2] == ["Down", "Active"]
    # the two managers left are the whole Raft cluster: writes go on
    cluster.swarm(leader, "service", "create", "--name", "after", *SLEEP)
    wait_for(lambda: len(running_tasks(cluster, "after", leader)) == 1, what="after running")
    cluster.swarm(leader, "node", "demote", leaving)
    cluster.swarm(leader, "node", "rm", leaving)
    assert leaving not in node_ls(cluster, leader)
    cluster.swarm(leader, "service", "rm", "after")
