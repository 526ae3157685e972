"""Running assigned tasks on the local engine, through its API (the engine knows nothing of tasks).

`plan_task` is the pure decision for one task given its container (or none); `Executor` observes
the engine, programs the overlay networks the tasks use (networks.py), applies the decisions and returns
the status reports for the dispatcher. A task container joins its overlays with the addresses the
allocator gave it, and gets its secrets and configs as in-memory files (the engine's HostConfig.Files:
secrets under /run/secrets, configs at their target path).
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from node.client import EngineClient
from node.errors import NodeError, NotFound
from orchestrator.agent.networks import NetworkProgrammer
from orchestrator.model import FileReference, Mount, MountType, PublishMode, Task, TaskState

log = logging.getLogger(__name__)

LABEL_TASK_ID = "com.docker.swarm.task.id"
LABEL_TASK_NAME = "com.docker.swarm.task.name"
LABEL_SERVICE_ID = "com.docker.swarm.service.id"
LABEL_SERVICE_NAME = "com.docker.swarm.service.name"
LABEL_NODE_ID = "com.docker.swarm.node.id"
RESEND_AFTER = 3.0
SECRETS_DIR = "/run/secrets"
ImageSource = Callable[[EngineClient, str], None]  # makes an image present on the engine, or raises NodeError


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Work:
    """One session reply: the node's tasks, the networks they use, their secrets' and configs' content."""

    assignments: tuple[Assignment, ...] = ()
    networks: tuple[Mapping[str, Any], ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)  # id -> base64 content
    configs: Mapping[str, str] = field(default_factory=dict)

    def network_names(self) -> dict[str, str]:
        return {str(n["id"]): str(n["name"]) for n in self.networks}


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


def file_target(ref: FileReference, *, secret: bool) -> str:
    """Where a secret or config lands: a secret's plain name goes under /run/secrets; configs are absolute
    (a relative config target is taken from /, as Docker does)."""
    if ref.target.startswith("/"):
        return ref.target
    return f"{SECRETS_DIR}/{ref.target}" if secret else f"/{ref.target}"


def files_of(task: Task, work: Work) -> tuple[list[dict[str, Any]], str]:
    """The task's HostConfig.Files, or ([], why) when some content did not come with the assignment."""
    files = []
    container = task.spec.container
    for refs, contents, secret in ((container.secrets, work.secrets, True), (container.configs, work.configs, False)):
        for ref in refs:
            data = contents.get(ref.id)
            if data is None:
                return [], f"{'secret' if secret else 'config'} {ref.name} not found"
            files.append({"Target": file_target(ref, secret=secret), "Data": data, "UID": ref.uid or "0",
                          "GID": ref.gid or "0", "Mode": ref.mode})
    return files, ""


def networking_of(task: Task, names: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """EndpointsConfig for the task's overlay addresses (by network name), or ({}, why) when a network is unknown."""
    endpoints: dict[str, Any] = {}
    for attachment in task.networks:
        name = names.get(attachment.network_id)
        if name is None:
            return {}, f"network {attachment.network_id} is not known on this node yet"
        address = attachment.addresses[0].split("/")[0] if attachment.addresses else ""
        endpoints[name] = {"IPAMConfig": {"IPv4Address": address} if address else None}
    return endpoints, ""


def mount_body(mount: Mount) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": mount.type.value, "Source": mount.source, "Target": mount.target,
                            "ReadOnly": mount.read_only}
    if mount.type is MountType.TMPFS and (mount.tmpfs_size_bytes or mount.tmpfs_mode):
        body["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", mount.tmpfs_size_bytes),
                                                  ("Mode", mount.tmpfs_mode)) if v}
    return body


def create_body(assignment: Assignment, node_id: str, *, endpoints: Mapping[str, Any] | None = None,
                files: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
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
    mounts = [mount_body(m) for m in spec.mounts if m.type in (MountType.BIND, MountType.VOLUME, MountType.TMPFS)]
    if mounts:
        host_config["Mounts"] = mounts
    if spec.read_only:
        host_config["ReadonlyRootfs"] = True
    if files:
        host_config["Files"] = [dict(f) for f in files]
    body: dict[str, Any] = {"Image": spec.image, "Env": list(spec.env), "Labels": labels, "HostConfig": host_config,
                            "StopTimeout": int(spec.stop_grace_period)}
    if endpoints:
        host_config["NetworkMode"] = next(iter(endpoints))
        body["NetworkingConfig"] = {"EndpointsConfig": dict(endpoints)}
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

    def __init__(self, engine_url: str, node_id: str, *, local_ip: str = "", parallel: int = 8,
                 image_source: ImageSource | None = None) -> None:
        self.engine_url = engine_url
        self.node_id = node_id
        self.parallel = parallel
        self.networks = NetworkProgrammer(local_ip=local_ip)
        self.image_source = image_source
        self._sent: dict[str, tuple[TaskState, float]] = {}
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="executor")
        # stops wait out a task's stop grace period: they run on their own, so a container that ignores its
        # stop signal holds up nothing else on the node (the task reports shutdown once its container is gone)
        self._stopper = ThreadPoolExecutor(max_workers=4 * parallel, thread_name_prefix="executor-stop")
        self._removing: dict[str, Future[None]] = {}
        self.on_removed: Callable[[], None] | None = None  # called when a removal finishes (wake the agent)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._stopper.shutdown(wait=False, cancel_futures=True)

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

    def reconcile(self, work: Work) -> list[dict[str, Any]]:
        """Bring the engine in line with the assignments; return status reports to send.

        Networks, peers and service records go first (a task leaving a VIP's backends leaves its map before
        its container stops); starts and removals then run `parallel` at a time (each waits on the engine:
        mounts, the runtime); networks no task uses any more go last."""
        with EngineClient(self.engine_url, timeout=60) as client:
            self.networks.sync(client, work.networks)
            containers = self.containers(client)
        wanted = {a.task.id for a in work.assignments}
        for task_id, container in containers.items():
            if task_id not in wanted:
                self._remove_soon(container)
        jobs: list[Callable[[EngineClient], dict[str, Any] | None]] = [
            functools.partial(self._apply, assignment=a, container=containers.get(a.task.id), work=work)
            for a in work.assignments]
        results = list(self._pool.map(self._run_job, jobs))
        with EngineClient(self.engine_url, timeout=60) as client:
            self.networks.remove_unused(client, work.networks)
        return [r for r in results if r is not None]

    def _run_job(self, job: Callable[[EngineClient], dict[str, Any] | None]) -> dict[str, Any] | None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = EngineClient(self.engine_url, timeout=60)
        return job(client)

    def _remove_soon(self, container: Container) -> None:
        """Stop and remove the container in the background (once: a removal in flight is not started again)."""
        running = self._removing.get(container.id)
        if running is not None and not running.done():
            return
        self._removing[container.id] = self._stopper.submit(self._remove_in_background, container)

    def _remove_in_background(self, container: Container) -> None:
        with EngineClient(self.engine_url, timeout=None) as client:
            self._remove(client, container)
        self._removing.pop(container.id, None)
        if self.on_removed is not None:
            self.on_removed()

    def remove_all(self) -> None:
        """Every task container and overlay network of this node (it left the swarm)."""
        with EngineClient(self.engine_url, timeout=60) as client:
            containers = list(self.containers(client).values())
        # all at once: each may wait out its stop grace period
        list(self._stopper.map(self._remove_in_background, containers))
        with EngineClient(self.engine_url, timeout=60) as client:
            self.networks.remove_unused(client, [])

    def _apply(self, client: EngineClient, *, assignment: Assignment, container: Container | None,
               work: Work) -> dict[str, Any] | None:
        task = assignment.task
        decision = plan_task(task, container)
        if decision.action is Action.START:
            decision = self._start(client, assignment, container, work)
            if decision.observed is TaskState.RUNNING and task.spec.container.healthcheck is not None:
                decision = Decision(action=Action.NONE, observed=TaskState.STARTING, message="starting")
        elif decision.action is Action.REMOVE and container is not None:
            self._remove_soon(container)
            return None  # shutdown is reported once the container is gone (the next pass sees none)
        observed = decision.observed
        if observed is None or observed <= task.status.state:
            return None
        sent = self._sent.get(task.id)
        now = time.monotonic()
        if sent is not None and sent[0] == observed and now - sent[1] < RESEND_AFTER:
            return None
        self._sent[task.id] = (observed, now)
        return {"task_id": task.id, "state": observed.name.lower(), "message": decision.message, "err": decision.err}

    def _start(self, client: EngineClient, assignment: Assignment, container: Container | None, work: Work) -> Decision:
        task = assignment.task
        try:
            if container is None:
                body = self._create_body(client, assignment, work)
                if isinstance(body, Decision):
                    return body
                created = client.post("/containers/create", params={"name": container_name(assignment)}, json=body)
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

    def _create_body(self, client: EngineClient, assignment: Assignment, work: Work) -> dict[str, Any] | Decision:
        """The create request, or the decision when the task can't be created (yet)."""
        task = assignment.task
        failed = [self.networks.failed[a.network_id] for a in task.networks if a.network_id in self.networks.failed]
        if failed:
            return Decision(action=Action.NONE, observed=TaskState.REJECTED, message="network failed", err=failed[0])
        endpoints, missing = networking_of(task, work.network_names())
        if missing:
            return Decision(action=Action.NONE, message=missing)  # the next session reply brings it
        files, lost = files_of(task, work)
        if lost:
            return Decision(action=Action.NONE, observed=TaskState.REJECTED, message="secret missing", err=lost)
        if self.image_source is not None:
            self.image_source(client, task.spec.container.image)
        return create_body(assignment, self.node_id, endpoints=endpoints, files=files)

    def _remove(self, client: EngineClient, container: Container) -> None:
        """Stop the container as `docker stop` does (its stop signal, SIGKILL after the task's stop grace period,
        which is the container's StopTimeout), then remove it: a forced removal alone would SIGKILL it."""
        try:
            if container.state in ("running", "paused", "restarting"):
                client.post(f"/containers/{container.id}/stop", timeout=None)  # the engine bounds the wait
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


def work_from(reply: Mapping[str, Any]) -> Work:
    return Work(assignments=tuple(assignments_from(reply)), networks=tuple(reply.get("networks") or ()),
                secrets=dict(reply.get("secrets") or {}), configs=dict(reply.get("configs") or {}))
