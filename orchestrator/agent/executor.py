"""Running assigned tasks on the local engine, through its API (the engine knows nothing of tasks).

`plan_task` is the pure decision for one task given its container (or none); `Executor` observes
the engine, applies the decisions and returns the status reports for the dispatcher.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from node.client import EngineClient
from node.errors import NodeError, NotFound
from orchestrator.model import MountType, PublishMode, Task, TaskState

log = logging.getLogger(__name__)

LABEL_TASK_ID = "com.docker.swarm.task.id"
LABEL_TASK_NAME = "com.docker.swarm.task.name"
LABEL_SERVICE_ID = "com.docker.swarm.service.id"
LABEL_SERVICE_NAME = "com.docker.swarm.service.name"
LABEL_NODE_ID = "com.docker.swarm.node.id"
RESEND_AFTER = 3.0


class Action(enum.Enum):
    NONE = "none"
    START = "start"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    id: str
    task_id: str
    state: str  # running, exited, created, ...
    exit_code: int = 0
    health: str = ""  # starting, healthy, unhealthy; "" without a healthcheck


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    action: Action
    observed: TaskState | None = None
    message: str = ""
    err: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    task: Task
    service_name: str


def plan_task(task: Task, container: Container | None) -> Decision:
    """What to do for `task`, and the state it is in as far as this node can tell."""
    wants_run = task.desired_state <= TaskState.RUNNING
    if container is None:
        if wants_run and task.status.state < TaskState.RUNNING:
            return Decision(action=Action.START)
        if wants_run and task.status.state == TaskState.RUNNING:
            return Decision(action=Action.NONE, observed=TaskState.FAILED, message="container gone",
                            err="the task's container was removed")
        return Decision(action=Action.NONE, observed=TaskState.SHUTDOWN, message="shutdown")
    if not wants_run:
        return Decision(action=Action.REMOVE, observed=TaskState.SHUTDOWN, message="shutdown")
    if container.state in ("running", "paused", "restarting"):
        if container.health == "starting":
            return Decision(action=Action.NONE, observed=TaskState.STARTING, message="starting")
        if container.health == "unhealthy":
            return Decision(action=Action.NONE, observed=TaskState.FAILED, message="unhealthy",
                            err="task: container is unhealthy")
        return Decision(action=Action.NONE, observed=TaskState.RUNNING, message="started")
    if container.state == "created":
        return Decision(action=Action.START)
    if container.exit_code == 0:
        return Decision(action=Action.NONE, observed=TaskState.COMPLETE, message="finished")
    return Decision(action=Action.NONE, observed=TaskState.FAILED, message="started",
                    err=f"task: non-zero exit ({container.exit_code})")


def health_of(status: str) -> str:
    """The health in `ps`'s STATUS text: 'Up 3 seconds (health: starting)' -> 'starting'."""
    for marker, health in (("(health: starting)", "starting"), ("(unhealthy)", "unhealthy"), ("(healthy)", "healthy")):
        if marker in status:
            return health
    return ""


def container_name(assignment: Assignment) -> str:
    task = assignment.task
    return f"{assignment.service_name or 'task'}.{task.slot if task.slot else task.node_id}.{task.id}"


def create_body(assignment: Assignment, node_id: str) -> dict[str, Any]:
    """The engine's create request (Docker's shape) for a task."""
    task, spec = assignment.task, assignment.task.spec.container
    labels = {**spec.labels, LABEL_TASK_ID: task.id, LABEL_TASK_NAME: container_name(assignment),
              LABEL_SERVICE_ID: task.service_id, LABEL_SERVICE_NAME: assignment.service_name,
              LABEL_NODE_ID: node_id}
    limits = task.spec.resources.limits
    host_config: dict[str, Any] = {"Init": True, "RestartPolicy": {"Name": "no"}}
    if limits.memory_bytes:
        host_config["Memory"] = limits.memory_bytes
    if limits.nano_cpus:
        host_config["NanoCpus"] = limits.nano_cpus
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in task.ports:
        if port.publish_mode is PublishMode.HOST:
            key = f"{port.target_port}/{port.protocol.value}"
            bindings.setdefault(key, []).append({"HostPort": str(port.published_port or "")})
    if bindings:
        host_config["PortBindings"] = bindings
    mounts = [{"Type": m.type.value, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
              for m in spec.mounts if m.type in (MountType.BIND, MountType.VOLUME, MountType.TMPFS)]
    if mounts:
        host_config["Mounts"] = mounts
    body: dict[str, Any] = {"Image": spec.image, "Env": list(spec.env), "Labels": labels, "HostConfig": host_config,
                            "StopTimeout": int(spec.stop_grace_period)}
    if spec.healthcheck is not None:
        check = spec.healthcheck
        body["Healthcheck"] = {"Test": list(check.test), "Interval": int(check.interval * 1e9),
                               "Timeout": int(check.timeout * 1e9), "Retries": check.retries,
                               "StartPeriod": int(check.start_period * 1e9)}
    if spec.command:
        body["Entrypoint"] = list(spec.command)
    if spec.args:
        body["Cmd"] = list(spec.args)
    for key, value in (("Hostname", spec.hostname), ("User", spec.user), ("WorkingDir", spec.workdir)):
        if value:
            body[key] = value
    return body


class Executor:
    """Blocking: run it in a worker thread."""

    def __init__(self, engine_url: str, node_id: str, *, parallel: int = 8) -> None:
        self.engine_url = engine_url
        self.node_id = node_id
        self.parallel = parallel
        self._sent: dict[str, tuple[TaskState, float]] = {}
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="executor")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def containers(self, client: EngineClient) -> dict[str, Container]:
        found: dict[str, Container] = {}
        for item in client.get("/containers/json", params={"all": "1"}):
            labels = item.get("Labels") or {}
            task_id = labels.get(LABEL_TASK_ID)
            if not task_id:
                continue
            state = str(item.get("State", ""))
            exit_code = 0
            if state not in ("running", "created", "paused", "restarting"):
                try:
                    exit_code = int(client.get(f"/containers/{item['Id']}/json")["State"].get("ExitCode", 0))
                except NodeError:
                    exit_code = -1
            found[task_id] = Container(id=item["Id"], task_id=task_id, state=state, exit_code=exit_code,
                                       health=health_of(str(item.get("Status", ""))))
        return found

    def reconcile(self, assignments: Sequence[Assignment]) -> list[dict[str, Any]]:
        """Bring the engine in line with the assignments; return status reports to send.

        Starts and removals run `parallel` at a time: each waits on the engine (mounts, the runtime)."""
        with EngineClient(self.engine_url, timeout=60) as client:
            containers = self.containers(client)
        wanted = {a.task.id for a in assignments}
        jobs: list[Callable[[EngineClient], dict[str, Any] | None]] = [
            functools.partial(self._remove_job, container) for task_id, container in containers.items()
            if task_id not in wanted]
        jobs += [functools.partial(self._apply, assignment=a, container=containers.get(a.task.id))
                 for a in assignments]
        results = list(self._pool.map(self._run_job, jobs))
        return [r for r in results if r is not None]

    def _run_job(self, job: Callable[[EngineClient], dict[str, Any] | None]) -> dict[str, Any] | None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = EngineClient(self.engine_url, timeout=60)
        return job(client)

    def _remove_job(self, container: Container, client: EngineClient) -> None:
        self._remove(client, container)

    def remove_all(self) -> None:
        with EngineClient(self.engine_url, timeout=60) as client:
            for container in self.containers(client).values():
                self._remove(client, container)

    def _apply(self, client: EngineClient, *, assignment: Assignment,
               container: Container | None) -> dict[str, Any] | None:
        task = assignment.task
        decision = plan_task(task, container)
        if decision.action is Action.START:
            decision = self._start(client, assignment, container)
            if decision.observed is TaskState.RUNNING and task.spec.container.healthcheck is not None:
                decision = Decision(action=Action.NONE, observed=TaskState.STARTING, message="starting")
        elif decision.action is Action.REMOVE and container is not None:
            self._remove(client, container)
        observed = decision.observed
        if observed is None or observed <= task.status.state:
            return None
        sent = self._sent.get(task.id)
        now = time.monotonic()
        if sent is not None and sent[0] == observed and now - sent[1] < RESEND_AFTER:
            return None
        self._sent[task.id] = (observed, now)
        return {"task_id": task.id, "state": observed.name.lower(), "message": decision.message, "err": decision.err}

    def _start(self, client: EngineClient, assignment: Assignment, container: Container | None) -> Decision:
        task = assignment.task
        try:
            if container is None:
                created = client.post("/containers/create", params={"name": container_name(assignment)},
                                      json=create_body(assignment, self.node_id))
                container_id = created["Id"]
            else:
                container_id = container.id
        except NodeError as exc:
            return Decision(action=Action.NONE, observed=TaskState.REJECTED, message="create failed", err=str(exc))
        try:
            client.post(f"/containers/{container_id}/start")
        except NodeError as exc:
            return Decision(action=Action.NONE, observed=TaskState.FAILED, message="start failed", err=str(exc))
        log.info("task %s started in container %s", task.id, container_id[:12])
        return Decision(action=Action.NONE, observed=TaskState.RUNNING, message="started")

    def _remove(self, client: EngineClient, container: Container) -> None:
        try:
            client.delete(f"/containers/{container.id}", params={"force": "1"})
        except NotFound:
            pass
        except NodeError as exc:
            log.warning("removing container %s failed: %s", container.id[:12], exc)


def task_logs(engine_url: str, task_id: str, *, tail: str = "all") -> str:
    """The output of the task's container, stdout and stderr interleaved as the engine stored them."""
    with EngineClient(engine_url, timeout=30) as client:
        for item in client.get("/containers/json", params={"all": "1"}):
            if (item.get("Labels") or {}).get(LABEL_TASK_ID) == task_id:
                response = client.request("GET", f"/containers/{item['Id']}/logs",
                                          params={"stdout": "1", "stderr": "1", "tail": tail})
                mux = "multiplexed" in response.headers.get("content-type", "")
                return demultiplex(response.content) if mux else response.content.decode(errors="replace")
    raise NotFound(f"no container for task {task_id} on this node")


def demultiplex(data: bytes) -> str:
    """Docker's log frames (8-byte header: stream, 3 zero bytes, big-endian length) to text."""
    out, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4:i + 8], "big")
        out.append(data[i + 8:i + 8 + size])
        i += 8 + size
    return b"".join(out).decode(errors="replace")


def assignments_from(reply: Mapping[str, Any]) -> list[Assignment]:
    from orchestrator.model import from_dict

    return [Assignment(task=from_dict(Task, item["task"]), service_name=str(item.get("service_name", "")))
            for item in reply.get("tasks", [])]
