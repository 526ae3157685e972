"""A real cluster on lab hosts: forming it, services spread and rescheduled, a worker and the leader killed.

Tests run in file order on one module-wide cluster (3 managers h1-h3, worker h4, 1 s heartbeats; h5
joins in the middle).
"""

from __future__ import annotations

import time

import pytest

from tests.orchestrator.cluster.conftest import Cluster, wait_for

pytestmark = [pytest.mark.privileged, pytest.mark.lab]


def _node_ls(cluster: Cluster, host: str) -> list[list[str]]:
    lines = cluster.swarm(host, "node", "ls").stdout.splitlines()
    assert lines[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS"]
    return [line.replace(" * ", "   ").split() for line in lines[1:]]


def test_three_managers_and_a_worker_form_a_cluster(cluster: Cluster) -> None:
    def view(host: str) -> list[list[str]]:
        return sorted(row[1:] for row in _node_ls(cluster, host))

    expected = [["h1", "Ready", "Active", "Leader"], ["h2", "Ready", "Active", "Reachable"],
                ["h3", "Ready", "Active", "Reachable"], ["h4", "Ready", "Active"]]
    wait_for(lambda: view("h1") == expected, what="node ls on h1")
    assert view("h2") == view("h3") == expected  # every manager shows the same view
    info = cluster.lab.exec("h4", "pynode", "info").stdout
    assert "Swarm: active" in info and "Is Manager: false" in info
    worker = cluster.swarm("h4", "node", "ls", check=False)
    assert worker.returncode == 1 and "not a swarm manager" in worker.stderr


def test_bad_joins_and_init_twice_are_refused(cluster: Cluster) -> None:
    again = cluster.swarm("h2", "init", "--advertise-addr", cluster.lab.host("h2").address, check=False)
    assert again.returncode == 1 and "already part of a swarm" in again.stderr
    token = cluster.worker_token  # type: ignore[attr-defined]
    twice = cluster.swarm("h4", "join", "--token", token, f"{cluster.lab.host('h1').address}:2377", check=False)
    assert twice.returncode == 1 and "already part of a swarm" in twice.stderr
    bad = cluster.swarm("h1", "service", "create", "--replicas", "-1", "busybox", check=False)
    assert bad.returncode != 0 and "replicas" in (bad.stderr + bad.stdout)
    unknown = cluster.swarm("h1", "node", "inspect", "nosuchnode", check=False)
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    manager = f"{cluster.lab.host('h1').address}:2377"
    prefix, version, digest, secret = token.split("-")
    attempts = {
        f"{prefix}-{version}-{'0' * len(digest)}-{secret}": "CA digest mismatch",
        f"{prefix}-{version}-{digest}-{'a' * len(secret)}": "secret is wrong",
        "SWMTKN-1-nonsense": "invalid join token",
    }
    for bad_token, message in attempts.items():
        refused = cluster.swarm("h5", "join", "--token", bad_token, manager, check=False)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
        assert "Swarm: inactive" in cluster.lab.exec("h5", "pynode", "info").stdout  # nothing half-made
    manager_leave = cluster.swarm("h2", "leave", check=False)
    assert manager_leave.returncode == 1 and "--force" in manager_leave.stderr
    cluster.swarm("h1", "join-token", "--rotate", "worker")
    rotated = cluster.swarm("h5", "join", "--token", token, manager, check=False)
    assert rotated.returncode == 1 and "rotated" in rotated.stderr


def test_a_worker_certificate_cannot_call_manager_routes(cluster: Cluster) -> None:
    import httpx

    from orchestrator.daemon import peers
    from orchestrator.daemon.localstate import SwarmPaths

    worker = SwarmPaths(data_root=cluster.lab.host("h4").data_root)
    ctx = peers.node_context(worker)
    with httpx.Client(verify=ctx, timeout=10) as client:
        response = client.get(f"https://{cluster.lab.host('h1').address}:2377/nodes", extensions=peers.SNI)
    assert response.status_code == 403 and "manager certificate" in response.json()["message"]


def test_replicas_spread_evenly_and_scale(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "web", "--replicas", "6",
                  "--constraint", "node.role==manager", "busybox", "sleep", "100000")
    wait_for(lambda: cluster.placement("h1", "web") == {"h1": 2, "h2": 2, "h3": 2}, what="2/2/2 spread")
    assert sum(len([c for c in cluster.containers(h) if c.startswith("web.")]) for h in ("h1", "h2", "h3")) == 6
    dup = cluster.swarm("h2", "service", "create", "--name", "web", "busybox", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    cluster.swarm("h2", "service", "scale", "web=10")
    wait_for(lambda: sum(cluster.placement("h1", "web").values()) == 10, what="10 running")
    cluster.swarm("h3", "service", "scale", "web=3")
    wait_for(lambda: cluster.placement("h1", "web") == {"h1": 1, "h2": 1, "h3": 1}, what="back to 3")


def test_the_api_takes_dockers_service_spec(cluster: Cluster) -> None:
    api = cluster.api("h2")
    api.post("/services/create", json={"Name": "dockerish", "Mode": {"Replicated": {"Replicas": 2}},
                                       "TaskTemplate": {"ContainerSpec": {"Image": "busybox",
                                                                          "Args": ["sleep", "100000"]}}})
    wait_for(lambda: sum(cluster.placement("h1", "dockerish").values()) == 2, what="2 running")
    service = api.get("/services/dockerish")
    assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 2}}
    assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"] == ["sleep", "100000"]
    api.delete("/services/dockerish")


def test_impossible_constraint_leaves_the_task_pending_with_its_reason(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "nowhere", "--constraint", "node.labels.zone==mars",
                  "busybox", "sleep", "100000")
    task = wait_for(lambda: [t for t in cluster.tasks("h1", "nowhere") if t["Status"]["Err"]], what="reason")[0]
    assert task["Status"]["State"] == "pending"
    assert "no suitable node" in task["Status"]["Err"]
    assert "no suitable node" in cluster.swarm("h1", "service", "ps", "nowhere").stdout
    cluster.swarm("h1", "service", "rm", "nowhere")
    cluster.swarm("h1", "service", "create", "--name", "huge", "--reserve-memory", "100T", "busybox", "sleep", "1")
    task = wait_for(lambda: [t for t in cluster.tasks("h1", "huge") if t["Status"]["Err"]], what="reason")[0]
    assert task["Status"]["State"] == "pending" and "memory" in task["Status"]["Err"]
    cluster.swarm("h1", "service", "rm", "huge")


def test_global_service_runs_one_task_per_node_including_one_that_joins_later(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "agent", "--mode", "global", "busybox", "sleep", "100000")
    wait_for(lambda: cluster.placement("h1", "agent") == {"h1": 1, "h2": 1, "h3": 1, "h4": 1}, what="one per node")
    token = cluster.swarm("h2", "join-token", "worker", "-q").stdout.strip()
    cluster.swarm("h5", "join", "--token", token, f"{cluster.lab.host('h2').address}:2377")
    wait_for(lambda: cluster.placement("h1", "agent") == {f"h{i}": 1 for i in range(1, 6)}, what="h5 too")
    cluster.swarm("h1", "service", "rm", "agent")
    wait_for(lambda: not any(c.startswith("agent.") for h in ("h1", "h2", "h3", "h4", "h5")
                             for c in cluster.containers(h)), what="global containers removed")


def test_drain_moves_tasks_elsewhere(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "drainme", "--replicas", "5", "busybox", "sleep", "100000")
    wait_for(lambda: cluster.placement("h1", "drainme").get("h4") == 1, what="a task on h4")
    cluster.swarm("h1", "node", "update", "--availability", "drain", "h4")
    wait_for(lambda: "h4" not in cluster.placement("h1", "drainme")
             and sum(cluster.placement("h1", "drainme").values()) == 5, what="drained")
    wait_for(lambda: not cluster.containers("h4"), what="h4's containers gone")
    cluster.swarm("h1", "node", "update", "--availability", "active", "h4")
    cluster.swarm("h1", "service", "rm", "drainme")


def test_killed_worker_tasks_are_rescheduled_and_not_duplicated_on_return(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "job", "--replicas", "5", "busybox", "sleep", "100000")
    wait_for(lambda: cluster.placement("h1", "job").get("h4") == 1, what="a task on h4")
    cluster.lab.kill("h4")
    # 3 missed heartbeats (1 s each) plus 5 s
    wait_for(lambda: "h4" not in cluster.placement("h1", "job") and sum(cluster.placement("h1", "job").values()) == 5,
             timeout=8.0, every=0.2, what="rescheduled off h4")
    assert ["h4", "Down", "Active"] in [row[1:] for row in _node_ls(cluster, "h1")]
    cluster.lab.start("h4")
    wait_for(lambda: ["h4", "Ready", "Active"] in [row[1:] for row in _node_ls(cluster, "h1")], what="h4 back")
    wait_for(lambda: not any(c.startswith("job.") for c in cluster.containers("h4")), what="stale task removed")
    assert sum(cluster.placement("h1", "job").values()) == 5  # exactly the replica count
    cluster.swarm("h1", "service", "rm", "job")


def test_rolling_update_then_rollback_on_failure(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "roll", "--replicas", "3", "--update-parallelism", "1",
                  "--update-delay", "1s", "--update-failure-action", "rollback", "busybox", "sleep", "100000")
    wait_for(lambda: sum(cluster.placement("h1", "roll").values()) == 3, what="3 running")
    cluster.swarm("h1", "service", "update", "--env-add", "VERSION=2", "roll")

    def updated() -> bool:
        tasks = [t for t in cluster.tasks("h1", "roll") if t["Status"]["State"] == "running"]
        return len(tasks) == 3 and all("VERSION=2" in t["Spec"]["ContainerSpec"]["Env"] for t in tasks)

    wait_for(updated, timeout=60, what="all tasks updated")
    service = cluster.api("h1").get("/services/roll")
    assert service["UpdateStatus"]["State"] == "completed"
    cluster.swarm("h1", "service", "update", "--image", "nosuchimage:1", "roll")
    wait_for(lambda: cluster.api("h1").get("/services/roll")["UpdateStatus"]["State"] == "rollback_completed",
             timeout=60, what="rollback completed")
    spec = cluster.api("h1").get("/services/roll")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == "busybox"
    wait_for(lambda: sum(cluster.placement("h1", "roll").values()) == 3, what="3 running after rollback")
    cluster.swarm("h1", "service", "rm", "roll")


def test_a_task_with_a_healthcheck_is_running_only_once_healthy(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "healthy", "--health-cmd", "test -f /tmp/ok",
                  "--health-interval", "1s", "--health-retries", "10", "busybox", "sh", "-c",
                  "sleep 4; touch /tmp/ok; sleep 100000")
    states = wait_for(lambda: [t["Status"]["State"] for t in cluster.tasks("h1", "healthy")
                               if t["Status"]["State"] in ("starting", "running")], what="started")
    assert states == ["starting"]
    wait_for(lambda: [t["Status"]["State"] for t in cluster.tasks("h1", "healthy")] == ["running"], what="healthy")
    cluster.swarm("h1", "service", "rm", "healthy")


def test_leader_killed_a_new_one_is_elected_and_the_old_rejoins_as_follower(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "ha", "--replicas", "3", "busybox", "sleep", "100000")
    wait_for(lambda: sum(cluster.placement("h1", "ha").values()) == 3, what="3 running")
    old = cluster.leader("h1")
    others = [h for h in ("h1", "h2", "h3") if h != old]
    cluster.lab.kill(old)
    new = wait_for(lambda: cluster.leader(others[0]) not in ("", old) and cluster.leader(others[0]),
                   timeout=5.0, every=0.1, what="a new leader")
    assert new in others
    cluster.swarm(others[1], "service", "scale", "ha=5")
    wait_for(lambda: sum(cluster.placement(others[0], "ha").values()) == 5 and old not in
             cluster.placement(others[0], "ha"), timeout=20, what="5 running without the old leader")
    cluster.lab.start(old)
    wait_for(lambda: [r[1:] for r in _node_ls(cluster, others[0]) if r[1] == old] == [[old, "Ready", "Active",
                                                                                        "Reachable"]],
             what="old leader back as a follower")
    assert cluster.leader(old) == new
    assert sum(cluster.placement(old, "ha").values()) == 5


def test_service_logs_come_from_every_node(cluster: Cluster) -> None:
    cluster.swarm("h1", "service", "create", "--name", "talk", "--mode", "global", "busybox", "sh", "-c",
                  "echo hello from $(hostname); sleep 100000")
    wait_for(lambda: len(cluster.placement("h1", "talk")) == 5, what="one per node")

    def logs() -> list[str]:
        return [line for line in cluster.swarm("h2", "service", "logs", "talk").stdout.splitlines()
                if "| hello from" in line]

    lines = wait_for(lambda: len(logs()) == 5 and logs(), what="a line from each task")
    assert sorted(line.split("@", 1)[1].split()[0] for line in lines) == ["h1", "h2", "h3", "h4", "h5"]
    cluster.swarm("h1", "service", "rm", "talk")


def test_promote_and_demote_a_worker(cluster: Cluster) -> None:
    cluster.swarm("h1", "node", "promote", "h4")
    wait_for(lambda: ["h4", "Ready", "Active", "Reachable"] in [r[1:] for r in _node_ls(cluster, "h1")],
             what="h4 a reachable manager")
    wait_for(lambda: cluster.swarm("h4", "node", "ls", check=False).returncode == 0, what="h4 answers node ls")
    cluster.swarm("h1", "node", "demote", "h4")
    wait_for(lambda: "not a swarm manager" in cluster.swarm("h4", "node", "ls", check=False).stderr,
             what="h4 a worker again")
    assert ["h4", "Ready", "Active"] in [r[1:] for r in _node_ls(cluster, "h1")]


def test_demoting_the_leader_hands_leadership_on(cluster: Cluster) -> None:
    old = cluster.leader("h1")
    other = next(h for h in ("h1", "h2", "h3") if h != old)
    cluster.swarm(other, "node", "demote", old)
    wait_for(lambda: cluster.leader(other) not in ("", old), what="a new leader")
    wait_for(lambda: "not a swarm manager" in cluster.swarm(old, "node", "ls", check=False).stderr,
             what="the old leader a worker")
    cluster.swarm(other, "node", "promote", old)
    wait_for(lambda: [old, "Ready", "Active", "Reachable"] in [r[1:] for r in _node_ls(cluster, other)],
             what="promoted back")
    wait_for(lambda: cluster.swarm(old, "node", "ls", check=False).returncode == 0, what="a manager again")


def test_a_worker_leaves_and_is_removed(cluster: Cluster) -> None:
    cluster.swarm("h4", "leave")
    assert "Swarm: inactive" in cluster.lab.exec("h4", "pynode", "info").stdout
    busy = cluster.swarm("h1", "node", "rm", "h4", check=False)
    wait_for(lambda: ["h4", "Down", "Active"] in [r[1:] for r in _node_ls(cluster, "h1")] or busy.returncode == 0,
             what="h4 down")
    if busy.returncode != 0:
        cluster.swarm("h1", "node", "rm", "h4")
    assert "h4" not in [r[1] for r in _node_ls(cluster, "h1")]


def test_a_live_node_removed_with_force_leaves_the_swarm(cluster: Cluster) -> None:
    refused = cluster.swarm("h1", "node", "rm", "h5", check=False)
    assert refused.returncode == 1 and "not down" in refused.stderr
    cluster.swarm("h1", "node", "rm", "--force", "h5")
    wait_for(lambda: "Swarm: inactive" in cluster.lab.exec("h5", "pynode", "info").stdout, what="h5 left")
    wait_for(lambda: not cluster.containers("h5"), what="h5's task containers removed")
    wait_for(lambda: all(t["NodeID"] in cluster.hostnames("h1") or not t["NodeID"]
                         for t in cluster.api("h1").get("/tasks")),
             what="h5's tasks forgotten")


def test_all_managers_restarting_together_come_back_with_the_same_state(cluster: Cluster) -> None:
    def snapshot() -> tuple[list[str], list[str], list[str]]:
        api = cluster.api("h1")
        return (sorted(n["ID"] for n in api.get("/nodes")), sorted(s["ID"] for s in api.get("/services")),
                sorted(t["ID"] for t in api.get("/tasks", params={"desired_state": "running"})))

    def settled() -> tuple[list[str], list[str], list[str]] | None:
        first = snapshot()
        time.sleep(3)
        return first if snapshot() == first else None

    before = wait_for(settled, timeout=60, what="a settled cluster")
    for host in ("h1", "h2", "h3"):
        cluster.lab.kill(host)
    for host in ("h1", "h2", "h3"):
        cluster.lab.start(host)
    wait_for(lambda: cluster.leader("h2") in ("h1", "h2", "h3"), what="a leader")
    # a replica applies its journal as the new term commits; then the same tasks run on (containers
    # survive an engine restart), none added
    wait_for(lambda: snapshot() == before, timeout=15, what="the state from before the restart")
    time.sleep(3)
    assert snapshot() == before


def test_quorum_lost_then_force_new_cluster_keeps_the_state(cluster: Cluster) -> None:
    leader = cluster.leader("h1")
    survivor, *gone = [leader] + [h for h in ("h1", "h2", "h3") if h != leader]
    for host in gone:
        cluster.lab.kill(host)
    lost = cluster.swarm(survivor, "service", "scale", "ha=2", check=False)
    assert lost.returncode == 1 and "quorum lost" in lost.stderr
    cluster.swarm(survivor, "init", "--force-new-cluster", "--advertise-addr", cluster.lab.host(survivor).address)
    rows = [r[1:] for r in _node_ls(cluster, survivor)]
    assert [survivor, "Ready", "Active", "Leader"] in rows
    cluster.swarm(survivor, "service", "scale", "ha=2")
    wait_for(lambda: sum(cluster.placement(survivor, "ha").values()) == 2
             and set(cluster.placement(survivor, "ha")) <= {survivor, "h5"}, what="ha on the live nodes")
    last = cluster.swarm(survivor, "node", "demote", survivor, check=False)
    assert last.returncode == 1 and "last manager" in last.stderr
