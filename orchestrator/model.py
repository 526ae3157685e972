"""The cluster's object types: frozen dataclasses that the store replicates and the API returns.

Every stored object (Cluster, Node, Service, Task, Network, Secret, Config) carries an `id` and a
`version`: the store revision at which it was last written (0 before it was ever stored).
`to_dict`/`from_dict` turn any of these types into JSON-able dicts and back: enums become their
lower-case names, bytes become base64 text, tuples become lists.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from orchestrator.errors import OrchestratorError

T = TypeVar("T")


class ModelError(OrchestratorError):
    """A dict could not be read as a model object."""


# --- enums -------------------------------------------------------------------------------------


class TaskState(enum.IntEnum):
    """Observed (and desired) task states, ordered as SwarmKit's (`api.TaskState`) values are."""

    NEW = 0
    PENDING = 64
    ASSIGNED = 192
    ACCEPTED = 256
    PREPARING = 320
    STARTING = 384
    RUNNING = 512
    COMPLETE = 576
    SHUTDOWN = 640
    FAILED = 704
    REJECTED = 768
    ORPHANED = 832

    def is_terminal(self) -> bool:
        return self > TaskState.RUNNING


class NodeRole(enum.StrEnum):
    WORKER = "worker"
    MANAGER = "manager"


class NodeAvailability(enum.StrEnum):
    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


class NodeStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    DOWN = "down"
    READY = "ready"
    DISCONNECTED = "disconnected"


class ServiceMode(enum.StrEnum):
    REPLICATED = "replicated"
    GLOBAL = "global"


class RestartCondition(enum.StrEnum):
    NONE = "none"
    ON_FAILURE = "on_failure"
    ANY = "any"


class FailureAction(enum.StrEnum):
    PAUSE = "pause"
    CONTINUE = "continue"
    ROLLBACK = "rollback"


class UpdateOrder(enum.StrEnum):
    STOP_FIRST = "stop_first"
    START_FIRST = "start_first"


class UpdateState(enum.StrEnum):
    UPDATING = "updating"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_PAUSED = "rollback_paused"
    ROLLBACK_COMPLETED = "rollback_completed"


class MountType(enum.StrEnum):
    BIND = "bind"
    VOLUME = "volume"
    TMPFS = "tmpfs"


class PortProtocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


class PublishMode(enum.StrEnum):
    INGRESS = "ingress"
    HOST = "host"


class EndpointMode(enum.StrEnum):
    VIP = "vip"
    DNSRR = "dnsrr"


class DependencyCondition(enum.StrEnum):
    """Compose's `depends_on` conditions, which the cluster honours across hosts."""

    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED_SUCCESSFULLY = "service_completed_successfully"


# --- building blocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    nano_cpus: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceRequirements:
    limits: Resources = field(default_factory=Resources)
    reservations: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    type: MountType = MountType.VOLUME
    source: str = ""
    target: str
    read_only: bool = False
    tmpfs_size_bytes: int = 0  # tmpfs only: 0 is the engine's default (no limit)
    tmpfs_mode: int = 0  # tmpfs only: the file mode of its root; 0 is the engine's default (1777)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthConfig:
    """Docker's healthcheck: `test` as in the API (["CMD-SHELL", "curl -f ..."]); times in seconds."""

    test: tuple[str, ...] = ()
    interval: float = 0.0
    timeout: float = 0.0
    retries: int = 0
    start_period: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReference:
    """A task's use of a secret or config: the object (by id and name) and the file it becomes.

    `target` is a file name under /run/secrets (secrets) or an absolute path (configs; default /<name>).
    `digest` is the sha256 of the content: a new version of the secret changes the spec, so its tasks roll."""

    id: str = ""
    name: str
    target: str
    uid: str = "0"
    gid: str = "0"
    mode: int = 0o444
    digest: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerSpec:
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    hostname: str = ""
    user: str = ""
    workdir: str = ""
    stop_grace_period: float = 10.0
    healthcheck: HealthConfig | None = None
    secrets: tuple[FileReference, ...] = ()
    configs: tuple[FileReference, ...] = ()
    read_only: bool = False  # the root filesystem (compose's read_only, Docker's ReadonlyRootfs)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    condition: RestartCondition = RestartCondition.ANY
    delay: float = 5.0
    max_attempts: int = 0
    window: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacementPreference:
    spread: str  # a constraint key such as "node.labels.zone"


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    constraints: tuple[str, ...] = ()
    preferences: tuple[PlacementPreference, ...] = ()
    max_replicas: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PortConfig:
    name: str = ""
    protocol: PortProtocol = PortProtocol.TCP
    target_port: int
    published_port: int = 0
    publish_mode: PublishMode = PublishMode.INGRESS


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkAttachmentConfig:
    """A service's use of a network: the network (its id once stored; a name is accepted on create) and the
    extra names the service answers to there."""

    target: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    container: ContainerSpec
    resources: ResourceRequirements = field(default_factory=ResourceRequirements)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    placement: Placement = field(default_factory=Placement)
    networks: tuple[NetworkAttachmentConfig, ...] = ()
    force_update: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateConfig:
    parallelism: int = 1
    delay: float = 0.0
    failure_action: FailureAction = FailureAction.PAUSE
    monitor: float = 5.0
    max_failure_ratio: float = 0.0
    order: UpdateOrder = UpdateOrder.STOP_FIRST


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSpec:
    mode: EndpointMode = EndpointMode.VIP
    ports: tuple[PortConfig, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceDependency:
    """Compose's `depends_on` entry: this service's tasks start only once `service` meets `condition`."""

    service: str  # the other service's name
    condition: DependencyCondition = DependencyCondition.STARTED


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    task: TaskSpec
    mode: ServiceMode = ServiceMode.REPLICATED
    replicas: int = 1
    update_config: UpdateConfig = field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = field(default_factory=UpdateConfig)
    endpoint: EndpointSpec = field(default_factory=EndpointSpec)
    depends_on: tuple[ServiceDependency, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatus:
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    timestamp: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkAttachment:
    """An address on a network (CIDR form, "10.0.1.5/24"), as the allocator gave it to a task or a VIP."""

    network_id: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """What the allocator decided for a service: its published ports (ingress ports without a published
    port get one from 30000-32767) and a VIP on each of its networks (endpoint mode vip)."""

    ports: tuple[PortConfig, ...] = ()
    virtual_ips: tuple[NetworkAttachment, ...] = ()
    spec_version: str = ""  # digest of the endpoint spec and networks this was allocated for


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinTokens:
    worker: str = ""
    manager: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCAInfo:
    cert_pem: str = ""
    key_pem: str = ""  # empty on an external CA
    cert_digest: str = ""  # "sha256:<hex>" of the certificate's DER
    join_tokens: JoinTokens = field(default_factory=JoinTokens)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    name: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    heartbeat_period: float = 5.0
    task_history_retention_limit: int = 5
    node_cert_expiry: float = 90 * 24 * 3600.0
    snapshot_interval: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSpec:
    name: str
    driver: str = "overlay"
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    subnets: tuple[str, ...] = ()
    attachable: bool = False
    internal: bool = False
    ingress: bool = False


MAX_SECRET_SIZE = 500 * 1024  # swarmkit's MaxSecretSize
MAX_CONFIG_SIZE = 1000 * 1024  # swarmkit's MaxConfigSize


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretSpec:
    """A secret's or config's spec. `data` is the plain content in requests only: the store holds it
    sealed (see Secret.sealed), never in the clear."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class StackSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


# --- stored objects ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    id: str
    version: int = 0
    spec: ClusterSpec = field(default_factory=ClusterSpec)
    root_ca: RootCAInfo = field(default_factory=RootCAInfo)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    id: str
    version: int = 0
    hostname: str = ""
    role: NodeRole = NodeRole.WORKER
    availability: NodeAvailability = NodeAvailability.ACTIVE
    status: NodeStatus = NodeStatus.UNKNOWN
    status_message: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    addr: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateStatus:
    """A rolling update (or rollback) of a service: where it stands, since when, and why it stopped."""

    state: UpdateState = UpdateState.UPDATING
    started_at: float = 0.0
    completed_at: float = 0.0
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    id: str
    version: int = 0
    spec: ServiceSpec
    previous_spec: ServiceSpec | None = None
    update_status: UpdateStatus | None = None
    endpoint: Endpoint | None = None  # None until the allocator has run for the current spec
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    id: str
    version: int = 0
    service_id: str = ""
    slot: int = 0
    node_id: str | None = None
    desired_state: TaskState = TaskState.RUNNING
    status: TaskStatus = field(default_factory=TaskStatus)
    spec: TaskSpec
    ports: tuple[PortConfig, ...] = ()
    networks: tuple[NetworkAttachment, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    """An overlay network: the allocator's VNI, subnet and gateway, and (ingress) each node's own address."""

    id: str
    version: int = 0
    spec: NetworkSpec
    vni: int = 0
    subnet: str = ""
    gateway: str = ""
    node_addresses: Mapping[str, str] = field(default_factory=dict)  # node id -> address (the ingress network)
    driver_state: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """`spec.data` is empty here: the content is in `sealed` (AES-GCM under the managers' key, see
    orchestrator/security/sealing.py); `digest` is the sha256 of the plain content."""

    id: str
    version: int = 0
    spec: SecretSpec
    sealed: bytes = b""
    digest: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    id: str
    version: int = 0
    spec: SecretSpec
    sealed: bytes = b""
    digest: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stack:
    """A deployed compose file: what `stack deploy` made, by name (the objects carry the namespace label
    com.docker.stack.namespace too)."""

    id: str
    version: int = 0
    spec: StackSpec
    services: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0


StoredObject = Cluster | Node | Service | Task | Network | Secret | Config | Stack


# --- JSON-able codec ---------------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    """Turn a model object (or any value inside one) into JSON-able data."""
    if dataclasses.is_dataclass(obj):
        names = _FIELD_NAMES.get(type(obj))
        if names is None:
            names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
        return {name: _to_value(getattr(obj, name)) for name in names}
    return _to_value(obj)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _to_value(obj: Any) -> Any:
    kind = type(obj)
    if kind is str or kind is int or kind is float or kind is bool or obj is None:
        return obj
    if kind is tuple and not obj:
        return []
    if kind is dict and all(type(v) is str for v in obj.values()):
        return dict(obj)
    if dataclasses.is_dataclass(obj):
        return to_dict(obj)
    return _to_value_slow(obj)


def _to_value_slow(obj: Any) -> Any:
    if obj is None or isinstance(obj, bool | int | float | str) and not isinstance(obj, enum.Enum):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.name.lower()
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    if isinstance(obj, Mapping):
        return {str(k): _to_value(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_to_value(v) for v in obj]
    raise ModelError(f"cannot serialise a {type(obj).__name__}")


def from_dict(cls: type[T], data: Any) -> T:
    """Read `data` (as made by `to_dict`) back into an instance of `cls`.

    A decoder compiled once per type does the work; when it trips, the slower checking decoder
    runs again to say exactly where the data is wrong.
    """
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = _compile(cls)
    try:
        return typing.cast(T, decoder(data))
    except (KeyError, TypeError, ValueError, AttributeError, ModelError):
        return typing.cast(T, _decode(cls, data, cls.__name__))


_DECODERS: dict[Any, Callable[[Any], Any]] = {}
_SCALARS = (str, int, float, bool)


def _compile(tp: Any) -> Callable[[Any], Any]:  # noqa: C901 - one branch per kind of type
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        inner_decoder = _compile(inner)
        return lambda d: None if d is None else inner_decoder(d)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _compile_dataclass(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        table = {m.name.lower(): m for m in tp}
        return table.__getitem__
    if origin is tuple:
        item = get_args(tp)[0]
        if item in _SCALARS:
            return lambda d: tuple(_checked_list(d, item))
        item_decoder = _compile(item)
        return lambda d: tuple(map(item_decoder, d))
    if origin in (Mapping, dict):
        value_type = get_args(tp)[1]
        if value_type in _SCALARS:
            return lambda d: dict(_checked_dict(d, value_type))
        value_decoder = _compile(value_type)
        return lambda d: {k: value_decoder(v) for k, v in d.items()}
    if tp is bytes:
        return lambda d: base64.b64decode(d.encode("ascii"))
    if tp is float:
        return lambda d: float(_checked(d, (int, float)))
    if tp in _SCALARS:
        return lambda d: _checked(d, tp)
    raise ModelError(f"cannot decode {tp}")


def _compile_dataclass(cls: type) -> Callable[[Any], Any]:
    hints = _hints(cls)
    fields = [(f.name, _compile(hints[f.name])) for f in dataclasses.fields(cls)]
    names = frozenset(name for name, _ in fields)

    def decode(data: dict[str, Any]) -> Any:
        if not names.issuperset(data):
            raise ModelError("unknown field")
        return cls(**{name: dec(data[name]) for name, dec in fields if name in data})

    return decode


def _checked(value: Any, tp: Any) -> Any:
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise TypeError(tp)
    return value


def _checked_list(values: Any, tp: type) -> Any:
    if not isinstance(values, list) or not all(isinstance(v, tp) for v in values):
        raise TypeError(tp)
    return values


def _checked_dict(values: Any, tp: type) -> Any:
    if not isinstance(values, dict) or not all(isinstance(v, tp) for v in values.values()):
        raise TypeError(tp)
    return values


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _decode(tp: Any, data: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _decode_union(tp, data, where)
    if tp is Any:
        return data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _decode_enum(tp, data, where)
    if origin is tuple:
        item = get_args(tp)[0]
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(_expect(list, data, where)))
    if origin in (Mapping, dict):
        value_type = get_args(tp)[1]
        return {str(k): _decode(value_type, v, f"{where}.{k}") for k, v in _expect(dict, data, where).items()}
    if tp is bytes:
        return base64.b64decode(_expect(str, data, where))
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return _expect(tp, data, where)


def _decode_union(tp: Any, data: Any, where: str) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    if data is None:
        return None
    if len(args) != 1:
        raise ModelError(f"{where}: cannot decode an ambiguous union {tp}")
    return _decode(args[0], data, where)


def _decode_dataclass(cls: type, data: Any, where: str) -> Any:
    mapping = _expect(dict, data, where)
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in mapping:
            kwargs[f.name] = _decode(hints[f.name], mapping[f.name], f"{where}.{f.name}")
    unknown = set(mapping) - set(hints)
    if unknown:
        raise ModelError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ModelError(f"{where}: {exc}") from exc


def _decode_enum(cls: type[enum.Enum], data: Any, where: str) -> Any:
    if isinstance(data, str):
        try:
            return cls[data.upper()]
        except KeyError:
            pass
    raise ModelError(f"{where}: {data!r} is not one of {', '.join(m.name.lower() for m in cls)}")


def _expect(tp: type[T], data: Any, where: str) -> T:
    if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
        raise ModelError(f"{where}: expected {tp.__name__}, got {type(data).__name__}")
    return data
