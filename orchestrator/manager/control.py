"""What the control API's routes do, on a manager: validate, then write through the store.

Nothing here knows HTTP; errors are `manager.errors` classes (and store errors) that api.py maps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.manager.dockershape import from_docker
from orchestrator.manager.errors import BadRequest, Conflict, NotFound
from orchestrator.manager.manager import Manager, raft_addr_of
from orchestrator.model import (
    Cluster,
    Node,
    NodeAvailability,
    NodeRole,
    NodeStatus,
    Resources,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    UpdateState,
    UpdateStatus,
    from_dict,
)
from orchestrator.reconcile.plan import new_id
from orchestrator.scheduler import ConstraintError, validate_placement
from orchestrator.security import RootCA, role_for_token, rotate_join_tokens
from orchestrator.store import ObjectExists

T = TypeVar("T", Node, Service)


def cluster_of(manager: Manager) -> Cluster:
    cluster = manager.cluster()
    if cluster is None:
        raise NotFound("the cluster object is missing from the store")
    return cluster


def root_ca(cluster: Cluster) -> RootCA:
    key = cluster.root_ca.key_pem.encode() if cluster.root_ca.key_pem else None
    return RootCA(cert_pem=cluster.root_ca.cert_pem.encode(), key_pem=key)


def _find(items: list[T], ref: str, names: Callable[[T], list[str]], what: str) -> T:
    for item in items:
        if item.id == ref:
            return item
    exact = [i for i in items if ref in names(i)]
    if len(exact) == 1:
        return exact[0]
    prefixed = [i for i in items if i.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(exact) + len(prefixed) > 1:
        raise Conflict(f"{what} {ref} is ambiguous ({len(exact) + len(prefixed)} matches)")
    raise NotFound(f"{what} {ref} not found")


def find_node(manager: Manager, ref: str) -> Node:
    return _find(manager.store.list(Node), ref, lambda n: [n.hostname], "node")


def find_service(manager: Manager, ref: str) -> Service:
    return _find(manager.store.list(Service), ref, lambda s: [s.spec.name], "service")


# --- swarm --------------------------------------------------------------------------------------------
def rotate_tokens(manager: Manager, *, worker: bool, manager_token: bool) -> Cluster:
    cluster = cluster_of(manager)
    tokens = rotate_join_tokens(cluster.root_ca.join_tokens, root_ca(cluster), worker=worker, manager=manager_token)
    return manager.store.update(dataclasses.replace(
        cluster, root_ca=dataclasses.replace(cluster.root_ca, join_tokens=tokens), updated_at=time.time()))


def admit_node(manager: Manager, *, token: str, csr_pem: bytes, hostname: str, addr: str,
               resources: dict[str, int]) -> dict[str, Any]:
    """A node joins: check its token, sign its certificate, record it (status unknown until it reports)."""
    cluster = cluster_of(manager)
    ca = root_ca(cluster)
    role = role_for_token(token, cluster.root_ca.join_tokens, ca)
    node_id = new_id()
    cert = ca.sign_csr(csr_pem, node_id=node_id, role=role, cluster_id=cluster.id, addresses=[addr] if addr else [])
    now = time.time()
    node = Node(id=node_id, hostname=hostname, role=role, addr=addr, status=NodeStatus.UNKNOWN,
                resources=Resources(nano_cpus=int(resources.get("nano_cpus", 0)),
                                    memory_bytes=int(resources.get("memory_bytes", 0))),
                created_at=now, updated_at=now)
    manager.store.create(node)
    return {"node_id": node_id, "role": role.value, "cluster_id": cluster.id, "cert_pem": cert.decode(),
            "ca_pem": cluster.root_ca.cert_pem, "managers": manager_addrs(manager),
            "heartbeat_period": cluster.spec.heartbeat_period}


def renew_certificate(manager: Manager, node_id: str, csr_pem: bytes) -> dict[str, Any]:
    """A node whose role changed asks for a certificate naming its new role."""
    node = manager.store.get(Node, node_id)
    if node is None:
        raise NotFound(f"node {node_id} not found")
    cluster = cluster_of(manager)
    cert = root_ca(cluster).sign_csr(csr_pem, node_id=node.id, role=node.role, cluster_id=cluster.id,
                                     addresses=[node.addr] if node.addr else [])
    return {"cert_pem": cert.decode(), "role": node.role.value}


def manager_addrs(manager: Manager) -> list[str]:
    return sorted(f"{n.addr}:2377" for n in manager.store.list(Node) if n.role is NodeRole.MANAGER and n.addr)


# --- nodes --------------------------------------------------------------------------------------------
def update_node(manager: Manager, ref: str, *, availability: str | None = None, role: str | None = None,
                labels_add: dict[str, str] | None = None, labels_rm: list[str] | None = None) -> Node:
    node = find_node(manager, ref)
    changes: dict[str, Any] = {}
    if availability is not None:
        try:
            changes["availability"] = NodeAvailability(availability)
        except ValueError:
            raise BadRequest(f"invalid availability {availability!r}: use active, pause or drain") from None
    if labels_add or labels_rm:
        labels = dict(node.labels)
        labels.update(labels_add or {})
        for key in labels_rm or []:
            if key not in labels:
                raise BadRequest(f"key {key} doesn't exist in node's labels")
            labels.pop(key)
        changes["labels"] = labels
    if role is not None:
        try:
            new_role = NodeRole(role)
        except ValueError:
            raise BadRequest(f"invalid role {role!r}: use worker or manager") from None
        if new_role is not node.role:
            _check_role_change(manager, node, new_role)
            changes["role"] = new_role
    if not changes:
        return node
    updated = manager.store.update(dataclasses.replace(node, **changes, updated_at=time.time()))
    if changes.get("role") is NodeRole.WORKER:
        leader = manager.proposer.leader
        if leader != raft_addr_of(node.addr) or leader == manager.proposer.self_addr:
            manager.remove_raft_member(node.addr)
        # else: the demoted leader hands leadership on and leaves the Raft cluster itself (its daemon sees the role)
    return updated


def _check_role_change(manager: Manager, node: Node, role: NodeRole) -> None:
    if role is NodeRole.WORKER:
        managers = [n for n in manager.store.list(Node) if n.role is NodeRole.MANAGER]
        if len(managers) <= 1:
            raise BadRequest("attempting to demote the last manager of the swarm")
    elif node.status is not NodeStatus.READY:
        raise BadRequest(f"node {node.hostname or node.id} is {node.status.value}: it cannot be promoted now")


def remove_node(manager: Manager, ref: str, *, force: bool) -> None:
    node = find_node(manager, ref)
    if node.role is NodeRole.MANAGER:
        raise BadRequest(f"rpc error: node {node.id} is a cluster manager and is a member of the raft cluster. "
                         "It must be demoted to worker before removal")
    if node.status is not NodeStatus.DOWN and not force:
        raise BadRequest(f"node {node.id} is not down and can't be removed (use --force to remove it anyway)")
    manager.store.delete(Node, node.id)


# --- services -----------------------------------------------------------------------------------------
def read_spec(body: dict[str, Any]) -> ServiceSpec:
    """`{"spec": <our model's dict>}`, or Docker's service spec (`Name`, `TaskTemplate`, `Mode`, ...)."""
    try:
        spec = from_docker(body) if "spec" not in body else from_dict(ServiceSpec, body["spec"])
    except Exception as exc:  # noqa: BLE001 - the model's decoder says where the spec is wrong
        raise BadRequest(f"invalid service spec: {exc}") from exc
    check_spec(spec)
    return spec


def check_spec(spec: ServiceSpec) -> None:
    if not spec.name:
        raise BadRequest("a service needs a name")
    if spec.replicas < 0:
        raise BadRequest(f"invalid replicas value {spec.replicas}: it must be 0 or more")
    if spec.mode is ServiceMode.GLOBAL and spec.replicas not in (0, 1):
        raise BadRequest("replicas can only be used with replicated mode")
    if not spec.task.container.image:
        raise BadRequest("a service needs an image")
    try:
        placement = spec.task.placement
        validate_placement(placement.constraints, [p.spread for p in placement.preferences])
    except ConstraintError as exc:
        raise BadRequest(str(exc)) from exc


def create_service(manager: Manager, spec: ServiceSpec) -> Service:
    check_spec(spec)
    if any(s.spec.name == spec.name for s in manager.store.list(Service)):
        raise Conflict(f"service {spec.name} already exists")
    now = time.time()
    try:
        return manager.store.create(Service(id=new_id(), spec=spec, created_at=now, updated_at=now))
    except ObjectExists as exc:
        raise Conflict(f"service {spec.name} already exists") from exc


def update_service(manager: Manager, ref: str, spec: ServiceSpec, *, version: int | None = None) -> Service:
    service = find_service(manager, ref)
    check_spec(spec)
    if version is not None and version != service.version:
        raise Conflict(f"service {service.spec.name} changed since it was read (version {version} is stale)")
    now = time.time()
    status = service.update_status
    previous = service.previous_spec
    if spec.task != service.spec.task:
        status = UpdateStatus(state=UpdateState.UPDATING, started_at=now, message="update in progress")
        previous = service.spec
    return manager.store.update(dataclasses.replace(
        service, spec=spec, previous_spec=previous, update_status=status, updated_at=now))


def rollback_service(manager: Manager, ref: str) -> Service:
    service = find_service(manager, ref)
    if service.previous_spec is None:
        raise BadRequest(f"service {service.spec.name} has no previous spec to roll back to")
    now = time.time()
    status = UpdateStatus(state=UpdateState.ROLLBACK_STARTED, started_at=now, message="manually requested rollback")
    return manager.store.update(dataclasses.replace(
        service, spec=service.previous_spec, previous_spec=service.spec, update_status=status, updated_at=now))


def remove_service(manager: Manager, ref: str) -> None:
    service = find_service(manager, ref)
    manager.store.delete(Service, service.id)


def list_tasks(manager: Manager, *, service: str | None = None, node: str | None = None,
               desired_state: str | None = None) -> list[Task]:
    tasks = manager.store.list(Task)
    if service:
        service_id = find_service(manager, service).id
        tasks = [t for t in tasks if t.service_id == service_id]
    if node:
        node_id = find_node(manager, node).id
        tasks = [t for t in tasks if t.node_id == node_id]
    if desired_state:
        wanted = {"running": ("running",), "shutdown": ("shutdown",), "accepted": ("running", "accepted")}
        states = wanted.get(desired_state)
        if states is None:
            raise BadRequest(f"invalid desired-state filter {desired_state!r}: use running, shutdown or accepted")
        tasks = [t for t in tasks if t.desired_state.name.lower() in states]
    return sorted(tasks, key=lambda t: (t.service_id, t.slot, "" if t.slot else t.node_id or "", -t.created_at))
