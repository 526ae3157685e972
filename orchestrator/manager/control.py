"""What the control API's routes do, on a manager: validate, then write through the store.

Nothing here knows HTTP; errors are `manager.errors` classes (and store errors) that api.py maps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from orchestrator.allocator import AllocationError, ingress_of, publishes_ingress
from orchestrator.allocator.networks import plan_network, underlay_addresses
from orchestrator.manager.dockershape import from_docker
from orchestrator.manager.errors import BadRequest, Conflict, NotFound
from orchestrator.manager.manager import Manager, raft_addr_of
from orchestrator.model import (
    MAX_CONFIG_SIZE,
    MAX_SECRET_SIZE,
    Cluster,
    Config,
    FileReference,
    Network,
    NetworkAttachmentConfig,
    NetworkSpec,
    Node,
    NodeAvailability,
    NodeRole,
    NodeStatus,
    PublishMode,
    Resources,
    Secret,
    SecretSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    Task,
    UpdateState,
    UpdateStatus,
    from_dict,
)
from orchestrator.reconcile.plan import new_id, port_shape
from orchestrator.scheduler import ConstraintError, validate_placement
from orchestrator.security import RootCA, role_for_token, rotate_join_tokens
from orchestrator.security.sealing import content_digest
from orchestrator.store import ObjectExists, Op, VersionConflict

T = TypeVar("T", Node, Service, Network, Secret, Config)


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


def find_network(manager: Manager, ref: str) -> Network:
    return _find(manager.store.list(Network), ref, lambda n: [n.spec.name], "network")


def find_secret(manager: Manager, ref: str, kind: type[Secret] | type[Config] = Secret) -> Secret | Config:
    items: list[Any] = list(manager.store.list(kind))
    found: Secret | Config = _find(items, ref, lambda s: [s.spec.name], _kind_word(kind))
    return found


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


# --- networks -----------------------------------------------------------------------------------------
def new_network(manager: Manager, spec: NetworkSpec, *, existing: list[Network] | None = None,
                now: float | None = None) -> Network:
    """A network as the allocator decides it (VNI, subnet, gateway); not stored yet."""
    if spec.ingress:
        raise BadRequest(f"network {spec.name}: the swarm has one ingress network, made at init")
    if any(n.spec.name == spec.name for n in manager.store.list(Network)):
        raise Conflict(f"network with name {spec.name} already exists")
    nodes = manager.store.list(Node)
    try:
        return plan_network(spec, network_id=new_id(), existing=manager.store.list(Network) + list(existing or ()),
                            underlay=underlay_addresses(n.addr for n in nodes), now=now or time.time())
    except AllocationError as exc:
        raise BadRequest(str(exc)) from exc


def allocation_guard(manager: Manager) -> Op:
    """A write of the cluster object that makes a transaction fail when another allocation came first."""
    cluster = cluster_of(manager)
    return Op.update(dataclasses.replace(cluster, updated_at=time.time()))


def create_network(manager: Manager, spec: NetworkSpec) -> Network:
    for _ in range(5):
        network = new_network(manager, spec)
        try:
            manager.store.transact([allocation_guard(manager), Op.create(network)])
        except VersionConflict:
            continue  # another network was allocated at the same time: decide again
        stored = manager.store.get(Network, network.id)
        assert stored is not None
        return stored
    raise Conflict(f"network {spec.name}: too many concurrent network changes, try again")


def services_using_network(manager: Manager, network: Network) -> list[str]:
    users = []
    for service in manager.store.list(Service):
        if any(a.target == network.id for a in service.spec.task.networks) or (
                network.spec.ingress and publishes_ingress(service.spec.endpoint.ports)):
            users.append(service.spec.name)
    return sorted(users)


def remove_network(manager: Manager, ref: str) -> None:
    network = find_network(manager, ref)
    users = services_using_network(manager, network)
    if users:
        raise Conflict(f"network {network.spec.name} is in use by service{'s' if len(users) > 1 else ''} "
                       f"{', '.join(users)}")
    manager.store.delete(Network, network.id)


# --- secrets and configs --------------------------------------------------------------------------------
def _kind_word(kind: type[Secret] | type[Config]) -> str:
    return "secret" if kind is Secret else "config"


def check_secret_spec(spec: SecretSpec, kind: type[Secret] | type[Config]) -> None:
    what = _kind_word(kind)
    if not spec.name:
        raise BadRequest(f"a {what} needs a name")
    limit = MAX_SECRET_SIZE if kind is Secret else MAX_CONFIG_SIZE
    if len(spec.data) > limit:
        raise BadRequest(f"{what} {spec.name} is {len(spec.data) // 1024} KB: the limit is {limit // 1024} KB")


def sealed_object(manager: Manager, spec: SecretSpec, kind: type[Secret] | type[Config], *,
                  object_id: str | None = None, created_at: float | None = None) -> Secret | Config:
    """The object to store: content sealed under the managers' key, its digest beside it."""
    check_secret_spec(spec, kind)
    if manager.sealer is None:
        raise BadRequest("this manager has no sealing key (no Raft secret)")
    oid = object_id or new_id()
    now = time.time()
    stored_spec = dataclasses.replace(spec, data=b"")
    sealed, digest = manager.sealer.seal(spec.data, context=oid), content_digest(spec.data)
    if kind is Secret:
        return Secret(id=oid, spec=stored_spec, sealed=sealed, digest=digest, created_at=created_at or now,
                      updated_at=now)
    return Config(id=oid, spec=stored_spec, sealed=sealed, digest=digest, created_at=created_at or now, updated_at=now)


def create_secret(manager: Manager, spec: SecretSpec, kind: type[Secret] | type[Config] = Secret) -> Secret | Config:
    what = _kind_word(kind)
    if any(s.spec.name == spec.name for s in manager.store.list(kind)):
        raise Conflict(f"{what} {spec.name} already exists")
    obj = sealed_object(manager, spec, kind)
    try:
        return manager.store.create(obj)
    except ObjectExists as exc:
        raise Conflict(f"{what} {spec.name} already exists") from exc


def secret_users(manager: Manager, obj: Secret | Config) -> list[str]:
    def refs(container: Any) -> tuple[FileReference, ...]:
        return tuple(container.secrets if isinstance(obj, Secret) else container.configs)

    return sorted(s.spec.name for s in manager.store.list(Service)
                  if any(r.id == obj.id for r in refs(s.spec.task.container)))


def remove_secret(manager: Manager, ref: str, kind: type[Secret] | type[Config] = Secret) -> None:
    obj = find_secret(manager, ref, kind)
    users = secret_users(manager, obj)
    if users:
        raise Conflict(f"{_kind_word(kind)} {obj.spec.name} is in use by the following service"
                       f"{'s' if len(users) > 1 else ''}: {', '.join(users)}")
    manager.store.delete(kind, obj.id)


def unseal(manager: Manager, obj: Secret | Config) -> bytes:
    if manager.sealer is None:
        raise BadRequest("this manager has no sealing key (no Raft secret)")
    return manager.sealer.unseal(obj.sealed, context=obj.id)


# --- services -----------------------------------------------------------------------------------------
def resolve_spec(manager: Manager, spec: ServiceSpec, *, networks: list[Network] | None = None,
                 secrets: Sequence[Secret | Config] = (), configs: Sequence[Secret | Config] = (),
                 service_id: str = "", others: tuple[ServiceSpec, ...] = ()) -> ServiceSpec:
    """Names to ids in the spec's networks, secrets and configs (each must exist, `networks`/`secrets`/
    `configs` add objects about to be created in the same transaction), the secrets' digests filled in,
    and ingress ports checked against the other services'."""
    known_networks = list({n.id: n for n in [*manager.store.list(Network), *(networks or ())]}.values())
    attachments: list[NetworkAttachmentConfig] = []
    for index, attachment in enumerate(spec.task.networks):
        network = _resolve(known_networks, attachment.target, "network", f"networks[{index}]")
        if network.spec.ingress:
            raise BadRequest(f"service {spec.name}: a service cannot be attached to the ingress network explicitly; "
                             "publish a port in ingress mode instead")
        if any(a.target == network.id for a in attachments):
            raise BadRequest(f"service {spec.name}: network {network.spec.name} is attached twice")
        attachments.append(NetworkAttachmentConfig(target=network.id, aliases=attachment.aliases))
    container = spec.task.container
    # objects about to be written in the same transaction replace the stored ones with their id
    known_secrets: list[Any] = list({o.id: o for o in [*manager.store.list(Secret), *secrets]}.values())
    known_configs: list[Any] = list({o.id: o for o in [*manager.store.list(Config), *configs]}.values())
    container = dataclasses.replace(container, secrets=_resolve_files(known_secrets, container.secrets, "secret"),
                                    configs=_resolve_files(known_configs, container.configs, "config"))
    _check_ingress_ports(manager, spec, service_id=service_id, others=others)
    task = dataclasses.replace(spec.task, networks=tuple(attachments), container=container)
    return dataclasses.replace(spec, task=task)


def _resolve(items: list[Any], ref: str, what: str, where: str) -> Any:
    for item in items:
        if item.id == ref:
            return item
    named = [i for i in items if i.spec.name == ref]
    if len(named) == 1:
        return named[0]
    raise NotFound(f"{what} {ref} not found ({where})")


def _resolve_files(items: list[Any], refs: tuple[FileReference, ...], what: str) -> tuple[FileReference, ...]:
    out = []
    for index, ref in enumerate(refs):
        obj = _resolve(items, ref.id or ref.name, what, f"{what}s[{index}]")
        out.append(dataclasses.replace(ref, id=obj.id, name=obj.spec.name, digest=obj.digest))
    targets = [r.target for r in out]
    if len(set(targets)) != len(targets):
        raise BadRequest(f"two {what}s have the same target {next(t for t in targets if targets.count(t) > 1)}")
    return tuple(out)


def _check_ingress_ports(manager: Manager, spec: ServiceSpec, *, service_id: str,
                         others: tuple[ServiceSpec, ...] = ()) -> None:
    """A port published in ingress mode belongs to one service in the whole swarm. `others`: specs written in
    the same transaction (they replace the stored services of their name)."""
    mine = _ingress_ports(spec)
    if not mine:
        return
    if ingress_of(manager.store.list(Network)) is None:
        raise BadRequest("this swarm has no ingress network: ports can only be published in host mode")
    replaced = {o.name for o in others}
    taken: list[tuple[str, set[tuple[Any, int]]]] = [(o.name, _ingress_ports(o)) for o in others if o.name != spec.name]
    for other in manager.store.list(Service):
        if other.id == service_id or other.spec.name == spec.name or other.spec.name in replaced:
            continue
        theirs = {(p.protocol, p.published_port) for p in (other.endpoint.ports if other.endpoint else ())
                  if p.publish_mode is PublishMode.INGRESS}
        taken.append((other.spec.name, theirs | _ingress_ports(other.spec)))
    for name, theirs in taken:
        for proto, port in sorted(mine & theirs):
            raise Conflict(f"port {port}/{proto.value} is already in use by service {name} as an ingress port")


def _ingress_ports(spec: ServiceSpec) -> set[tuple[Any, int]]:
    return {(p.protocol, p.published_port) for p in spec.endpoint.ports
            if p.publish_mode is PublishMode.INGRESS and p.published_port}


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
    spec = resolve_spec(manager, spec)
    now = time.time()
    try:
        return manager.store.create(Service(id=new_id(), spec=spec, created_at=now, updated_at=now))
    except ObjectExists as exc:
        raise Conflict(f"service {spec.name} already exists") from exc


def update_service(manager: Manager, ref: str, spec: ServiceSpec, *, version: int | None = None) -> Service:
    service = find_service(manager, ref)
    check_spec(spec)
    spec = resolve_spec(manager, spec, service_id=service.id)
    if version is not None and version != service.version:
        raise Conflict(f"service {service.spec.name} changed since it was read (version {version} is stale)")
    return manager.store.update(updated_service(service, spec, now=time.time()))


def updated_service(service: Service, spec: ServiceSpec, *, now: float) -> Service:
    """The service with its new spec; a changed task template starts a rolling update."""
    status = service.update_status
    previous = service.previous_spec
    if spec.task != service.spec.task or port_shape(spec.endpoint.ports) != port_shape(service.spec.endpoint.ports):
        status = UpdateStatus(state=UpdateState.UPDATING, started_at=now, message="update in progress")
        previous = service.spec
    return dataclasses.replace(service, spec=spec, previous_spec=previous, update_status=status, updated_at=now)


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
