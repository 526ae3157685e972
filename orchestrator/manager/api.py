"""The control API (FastAPI): on the node's local socket, and over mutual TLS on managers (port 2377).

Routes follow Docker's swarm API where they fit: `/swarm`, `/swarm/init|join|leave|update`, `/nodes`,
`/services`, `/tasks`; `/join-node`, `/raft/join`, `/dispatcher/*` and `/node/certificate` serve
nodes and managers. Who calls is known from the connection: the local socket is this node's root
user; a TLS peer is the node its certificate names, with the role the certificate carries. OpenAPI
docs are at `/docs`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from orchestrator.allocator import AllocationError
from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.distribution import mount_registry
from orchestrator.errors import OrchestratorError
from orchestrator.manager import control
from orchestrator.manager.dispatcher import StatusReport
from orchestrator.manager.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from orchestrator.manager.views import (
    network_view,
    node_view,
    secret_view,
    service_view,
    stack_view,
    swarm_view,
    task_view,
)
from orchestrator.model import (
    Config,
    ModelError,
    Network,
    NetworkSpec,
    Node,
    NodeRole,
    NodeStatus,
    Secret,
    SecretSpec,
    Service,
    Stack,
    Task,
    TaskState,
    from_dict,
)
from orchestrator.security import InvalidJoinToken, SecurityError, identity_from_certificate
from orchestrator.stacks import deploy
from orchestrator.stacks.model import StackDeployment
from orchestrator.store import NotLeader, ObjectExists, ObjectNotFound, QuorumLost, VersionConflict

if TYPE_CHECKING:
    from orchestrator.daemon.daemon import Daemon
    from orchestrator.manager.manager import Manager

_STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404), (ObjectNotFound, 404), (Conflict, 409), (ObjectExists, 409), (VersionConflict, 409),
    (BadRequest, 400), (AllocationError, 400), (InvalidJoinToken, 401), (Forbidden, 403), (SecurityError, 403),
    (Unavailable, 503), (QuorumLost, 503), (NotLeader, 503),
]
NOT_MANAGER = ("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. "
               "Please run this command on a manager node or promote the current node to a manager.")


def create_app(daemon: Daemon) -> FastAPI:
    app = FastAPI(title="pyswarm control API", version="1.0")

    @app.exception_handler(OrchestratorError)
    async def _errors(request: Request, exc: OrchestratorError) -> JSONResponse:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        return JSONResponse({"message": str(exc)}, status_code=status)

    _local_routes(app, daemon)
    _swarm_routes(app, daemon)
    _node_routes(app, daemon)
    _service_routes(app, daemon)
    _network_routes(app, daemon)
    _secret_routes(app, daemon)
    _stack_routes(app, daemon)
    _cluster_routes(app, daemon)
    mount_registry(app, daemon)  # /v2/: the images of this manager's engine, for nodes to pull
    return app


# --- who is calling ---------------------------------------------------------------------------------
def is_local(request: Request) -> bool:
    return bool(request.scope.get("state", {}).get("local"))


def caller(request: Request, daemon: Daemon) -> tuple[str, NodeRole]:
    """(node id, role) of a TLS peer, from its verified certificate; the local socket acts as this node."""
    if is_local(request):
        if daemon.state is None:
            raise Unavailable("This node is not part of a swarm")
        return daemon.state.node_id, daemon.state.role
    der = request.scope.get("state", {}).get("peer_cert")
    if not der:
        raise Forbidden("a node certificate is required (mutual TLS)")
    identity = identity_from_certificate(der)
    if daemon.state is None or identity.cluster_id != daemon.state.cluster_id:
        raise Forbidden("certificate from another cluster")
    return identity.node_id, identity.role


def manager_of(request: Request, daemon: Daemon) -> Manager:
    _node_id, role = caller(request, daemon)
    if role is not NodeRole.MANAGER and is_local(request):
        raise Unavailable(NOT_MANAGER)
    if role is not NodeRole.MANAGER:
        raise Forbidden("permission denied: this route needs a manager certificate (the caller is a worker)")
    if daemon.manager is None:
        raise Unavailable(NOT_MANAGER)
    return daemon.manager


def local_only(request: Request) -> None:
    if not is_local(request):
        raise Forbidden("this route is only served on the node's local socket")


def _run(func: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(func, *args, **kwargs)


# --- routes -----------------------------------------------------------------------------------------
def _local_routes(app: FastAPI, daemon: Daemon) -> None:
    @app.get("/local")
    def local_state(request: Request) -> dict[str, Any]:
        local_only(request)
        return daemon.describe()

    @app.post("/swarm/init")
    async def init(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        local_only(request)
        return await daemon.init(advertise_addr=body.get("advertise_addr") or "",
                                 heartbeat_period=float(body.get("heartbeat_period") or 5.0),
                                 force_new_cluster=bool(body.get("force_new_cluster")))

    @app.post("/swarm/join")
    async def join(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        local_only(request)
        return await daemon.join(remote_addr=str(body["remote_addr"]), token=str(body["token"]),
                                 advertise_addr=body.get("advertise_addr") or "")

    @app.post("/swarm/leave")
    async def leave(request: Request, force: bool = False) -> dict[str, Any]:
        local_only(request)
        return await daemon.leave(force=force)


def _swarm_routes(app: FastAPI, daemon: Daemon) -> None:
    @app.get("/swarm")
    def inspect_swarm(request: Request) -> dict[str, Any]:
        return swarm_view(control.cluster_of(manager_of(request, daemon)))

    @app.post("/swarm/update")
    def update_swarm(request: Request, rotate_worker_token: bool = False,
                     rotate_manager_token: bool = False) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        return swarm_view(control.rotate_tokens(manager, worker=rotate_worker_token,
                                                manager_token=rotate_manager_token))

    @app.get("/ca", response_class=PlainTextResponse)
    def ca_certificate() -> str:
        return daemon.paths.ca_cert.read_text()


def _node_routes(app: FastAPI, daemon: Daemon) -> None:
    @app.get("/nodes")
    def list_nodes(request: Request) -> list[dict[str, Any]]:
        manager = manager_of(request, daemon)
        nodes = sorted(manager.store.list(Node), key=lambda n: (n.hostname, n.id))
        return [node_view(n, manager.manager_status(n)) for n in nodes]

    @app.get("/nodes/{ref}")
    def inspect_node(request: Request, ref: str) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        node = control.find_node(manager, ref)
        return node_view(node, manager.manager_status(node))

    @app.post("/nodes/{ref}/update")
    def update_node(request: Request, ref: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        manager = manager_of(request, daemon)
        node = control.update_node(manager, ref, availability=body.get("availability"), role=body.get("role"),
                                   labels_add=body.get("labels_add"), labels_rm=body.get("labels_rm"))
        return node_view(node, manager.manager_status(node))

    @app.delete("/nodes/{ref}")
    def remove_node(request: Request, ref: str, force: bool = False) -> dict[str, Any]:
        control.remove_node(manager_of(request, daemon), ref, force=force)
        return {}


def _service_routes(app: FastAPI, daemon: Daemon) -> None:
    def view(manager: Manager, service: Service) -> dict[str, Any]:
        tasks = [t for t in manager.store.list(Task) if t.service_id == service.id]
        up = sum(1 for n in manager.store.list(Node) if n.status is NodeStatus.READY)
        return service_view(service, tasks, up)

    @app.get("/services")
    def list_services(request: Request) -> list[dict[str, Any]]:
        manager = manager_of(request, daemon)
        return [view(manager, s) for s in sorted(manager.store.list(Service), key=lambda s: s.spec.name)]

    @app.post("/services/create", status_code=201)
    def create_service(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        manager = manager_of(request, daemon)
        service = control.create_service(manager, control.read_spec(body))
        return {"ID": service.id}

    @app.get("/services/{ref}")
    def inspect_service(request: Request, ref: str) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        return view(manager, control.find_service(manager, ref))

    @app.post("/services/{ref}/update")
    def update_service(request: Request, ref: str, body: dict[str, Any] = Body(...),  # noqa: B008
                       version: int | None = None, rollback: bool = False) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        if rollback:
            service = control.rollback_service(manager, ref)
        else:
            service = control.update_service(manager, ref, control.read_spec(body), version=version)
        return view(manager, service)

    @app.delete("/services/{ref}")
    def remove_service(request: Request, ref: str) -> dict[str, Any]:
        control.remove_service(manager_of(request, daemon), ref)
        return {}

    @app.get("/services/{ref}/logs", response_class=PlainTextResponse)
    def service_logs(request: Request, ref: str, tail: str = "all") -> str:
        manager = manager_of(request, daemon)
        return fetch_service_logs(manager, daemon.paths, control.find_service(manager, ref), tail=tail)

    @app.get("/tasks/{task_id}")
    def inspect_task(request: Request, task_id: str) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        matches = [t for t in manager.store.list(Task) if t.id == task_id or t.id.startswith(task_id)]
        if len(matches) != 1:
            raise NotFound(f"task {task_id} not found") if not matches else Conflict(f"task {task_id} is ambiguous")
        names = {s.id: s.spec.name for s in manager.store.list(Service)}
        return task_view(matches[0], names.get(matches[0].service_id, ""))

    @app.get("/tasks")
    def list_tasks(request: Request, service: str | None = None, node: str | None = None,
                   desired_state: str | None = None) -> list[dict[str, Any]]:
        manager = manager_of(request, daemon)
        names = {s.id: s.spec.name for s in manager.store.list(Service)}
        tasks = control.list_tasks(manager, service=service, node=node, desired_state=desired_state)
        return [task_view(t, names.get(t.service_id, "")) for t in tasks]


def _network_routes(app: FastAPI, daemon: Daemon) -> None:
    @app.get("/networks")
    def list_networks(request: Request) -> list[dict[str, Any]]:
        manager = manager_of(request, daemon)
        return [network_view(n) for n in sorted(manager.store.list(Network), key=lambda n: n.spec.name)]

    @app.get("/networks/{ref}")
    def inspect_network(request: Request, ref: str) -> dict[str, Any]:
        return network_view(control.find_network(manager_of(request, daemon), ref))

    @app.post("/networks/create", status_code=201)
    def create_network(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Docker's body: Name, Driver, Options, IPAM.Config[].Subnet, Attachable, Internal, Labels."""
        manager = manager_of(request, daemon)
        subnets = tuple(str(c["Subnet"]) for c in ((body.get("IPAM") or {}).get("Config") or []) if c.get("Subnet"))
        spec = NetworkSpec(name=str(body.get("Name") or ""), driver=str(body.get("Driver") or "overlay"),
                           options={str(k): str(v) for k, v in (body.get("Options") or {}).items()},
                           labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
                           subnets=subnets, attachable=bool(body.get("Attachable")),
                           internal=bool(body.get("Internal")), ingress=bool(body.get("Ingress")))
        if not spec.name:
            raise BadRequest("a network needs a name")
        network = control.create_network(manager, spec)
        return {"Id": network.id, "Warning": ""}

    @app.delete("/networks/{ref}")
    def remove_network(request: Request, ref: str) -> dict[str, Any]:
        control.remove_network(manager_of(request, daemon), ref)
        return {}


def _secret_routes(app: FastAPI, daemon: Daemon) -> None:
    for word, kind in (("secrets", Secret), ("configs", Config)):
        _file_object_routes(app, daemon, word, kind)


def _file_object_routes(app: FastAPI, daemon: Daemon, word: str, kind: type[Secret] | type[Config]) -> None:
    show_data = kind is Config  # Docker shows a config's content, never a secret's

    def view(manager: Manager, obj: Secret | Config) -> dict[str, Any]:
        return secret_view(obj, data=control.unseal(manager, obj) if show_data else None)

    @app.get(f"/{word}", name=f"list_{word}")
    def list_objects(request: Request) -> list[dict[str, Any]]:
        manager = manager_of(request, daemon)
        items: list[Secret | Config] = list(manager.store.list(kind))
        return [view(manager, o) for o in sorted(items, key=lambda o: o.spec.name)]

    @app.get(f"/{word}/{{ref}}", name=f"inspect_{word}")
    def inspect_object(request: Request, ref: str) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        return view(manager, control.find_secret(manager, ref, kind))

    @app.post(f"/{word}/create", status_code=201, name=f"create_{word}")
    def create_object(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Docker's body: Name, Labels, Data (base64)."""
        manager = manager_of(request, daemon)
        try:
            data = base64.b64decode(str(body.get("Data") or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"Data is not valid base64: {exc}") from exc
        spec = SecretSpec(name=str(body.get("Name") or ""),
                          labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()}, data=data)
        return {"ID": control.create_secret(manager, spec, kind).id}

    @app.delete(f"/{word}/{{ref}}", name=f"remove_{word}")
    def remove_object(request: Request, ref: str) -> dict[str, Any]:
        control.remove_secret(manager_of(request, daemon), ref, kind)
        return {}


def _stack_routes(app: FastAPI, daemon: Daemon) -> None:
    """Stacks: a compose file deployed as one object (what `pyswarm stack deploy` sends, already mapped)."""

    @app.get("/stacks")
    def list_stacks(request: Request) -> list[dict[str, Any]]:
        manager = manager_of(request, daemon)
        return [deploy.stack_summary(manager, s) for s in sorted(manager.store.list(Stack), key=lambda s: s.spec.name)]

    @app.get("/stacks/{name}")
    def inspect_stack(request: Request, name: str) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        return stack_view(deploy.find_stack(manager, name))

    @app.post("/stacks", status_code=200)
    def deploy_stack(request: Request, body: dict[str, Any] = Body(...),  # noqa: B008
                     prune: bool = False) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        try:
            deployment = from_dict(StackDeployment, body)
        except ModelError as exc:
            raise BadRequest(f"invalid stack deployment: {exc}") from exc
        outcome = deploy.deploy_stack(manager, deployment, prune=prune)
        assert outcome.stack is not None
        return {"Stack": stack_view(outcome.stack), "Actions": outcome.actions}

    @app.delete("/stacks/{name}")
    def remove_stack(request: Request, name: str) -> dict[str, Any]:
        return {"Actions": deploy.remove_stack(manager_of(request, daemon), name)}


def _cluster_routes(app: FastAPI, daemon: Daemon) -> None:
    """Routes nodes and managers call on each other (TLS)."""

    @app.post("/join-node")
    def join_node(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        if daemon.manager is None:
            raise Unavailable(NOT_MANAGER)
        return control.admit_node(daemon.manager, token=str(body.get("token", "")),
                                  csr_pem=str(body.get("csr_pem", "")).encode(), hostname=str(body.get("hostname", "")),
                                  addr=str(body.get("addr", "")), resources=dict(body.get("resources") or {}))

    @app.post("/raft/join")
    def raft_join(request: Request) -> dict[str, Any]:
        manager = manager_of(request, daemon)
        node_id, _role = caller(request, daemon)
        node = manager.store.get(Node, node_id)
        if node is None or node.role is not NodeRole.MANAGER:
            raise Forbidden("only a node the store records as a manager may join the Raft cluster")
        peers = manager.add_raft_member(node.addr)
        assert daemon.state is not None
        return {"peers": peers, "secret": daemon.state.raft_secret}

    @app.post("/node/certificate")
    def renew(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        node_id, _role = caller(request, daemon)
        manager = _leader_manager(daemon)
        return control.renew_certificate(manager, node_id, str(body.get("csr_pem", "")).encode())

    @app.get("/node/tasks/{task_id}/logs", response_class=PlainTextResponse)
    def task_logs(request: Request, task_id: str, tail: str = "all") -> str:
        _node_id, role = caller(request, daemon)
        if role is not NodeRole.MANAGER:
            raise Forbidden("permission denied: only managers may read a node's task logs")
        from node.errors import NotFound as EngineNotFound
        from orchestrator.agent.executor import task_logs as read_logs

        try:
            return read_logs(daemon.engine_url, task_id, tail=tail)
        except EngineNotFound as exc:
            raise NotFound(str(exc)) from exc

    @app.post("/dispatcher/session")
    async def session(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        node_id, _role = caller(request, daemon)
        manager = _leader_manager(daemon)
        manager.dispatcher.heartbeat(node_id)
        node = await _run(manager.dispatcher.mark_ready, node_id, hostname=str(body.get("hostname", "")),
                          addr=str(body.get("addr", "")))
        if node is None:
            raise NotFound(f"node {node_id} is not part of this swarm (it was removed)")
        period = manager.heartbeat_period()
        wait = period if body.get("wait", True) else 0.0
        digest, payload = await manager.dispatcher.wait_for_change(node_id, str(body.get("known", "")), wait)
        manager.dispatcher.heartbeat(node_id)
        node = manager.store.get(Node, node_id) or node
        return {"digest": digest, **payload, "managers": control.manager_addrs(manager),
                "heartbeat_period": period, "role": node.role.value, "node_id": node_id}

    @app.post("/dispatcher/status")
    def status(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        node_id, _role = caller(request, daemon)
        manager = _leader_manager(daemon)
        reports = [StatusReport(task_id=str(r["task_id"]), state=TaskState[str(r["state"]).upper()],
                                message=str(r.get("message", "")), err=str(r.get("err", "")))
                   for r in body.get("reports", [])]
        manager.dispatcher.report(node_id, reports)
        return {}


def fetch_service_logs(manager: Manager, paths: SwarmPaths, service: Service, *, tail: str) -> str:
    """Each task's output from its node (mutual TLS to that node's daemon), prefixed as Docker does."""
    import httpx

    from orchestrator.daemon import peers

    nodes = {n.id: n for n in manager.store.list(Node)}
    tasks = [t for t in manager.store.list(Task) if t.service_id == service.id and t.node_id in nodes
             and t.status.state >= TaskState.RUNNING and t.desired_state <= TaskState.RUNNING]
    lines = []
    with httpx.Client(verify=peers.node_context(paths), timeout=15) as client:
        for task in sorted(tasks, key=lambda t: (t.slot, t.node_id or "")):
            node = nodes[task.node_id or ""]
            prefix = f"{service.spec.name}.{task.slot or node.id}.{task.id[:12]}@{node.hostname}"
            try:
                response = client.get(peers.url(f"{node.addr}:2377", f"/node/tasks/{task.id}/logs"),
                                      params={"tail": tail}, extensions={"sni_hostname": node.id})
            except (httpx.TransportError, OSError) as exc:
                lines.append(f"{prefix}    | (logs unavailable: {exc})")
                continue
            if response.status_code != 200:
                lines.append(f"{prefix}    | (logs unavailable: {peers.message_of(response)})")
                continue
            lines += [f"{prefix}    | {line}" for line in response.text.splitlines()]
    return "\n".join(lines) + ("\n" if lines else "")


def _leader_manager(daemon: Daemon) -> Manager:
    manager = daemon.manager
    if manager is None:
        raise Unavailable(NOT_MANAGER)
    if not manager.proposer.is_leader_ready():  # a new leader answers once its replica has caught up
        leader = manager.proposer.leader
        hint = f"{leader.rsplit(':', 1)[0]}:2377" if leader and leader != manager.proposer.self_addr else ""
        raise Unavailable(f"not the leader; leader: {hint or 'unknown'}")
    return manager
