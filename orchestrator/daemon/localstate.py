"""What a node keeps of its cluster membership under `<data-root>/swarm/`.

    swarm/state.json            node id, role, cluster id, advertise address, known managers
    swarm/certificates/         ca.pem, node.pem, node.key (0600)
    swarm/raft/                 the Raft journal and snapshot (managers)
    swarm/control.sock          the daemon's local API (root only), what `pyswarm` talks to
    swarm/daemon.pid, daemon.log
    swarm/info.json             the `Swarm` section the engine shows in `/info` (`pynode info`)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.model import NodeRole

CONTROL_PORT = 2377
RAFT_PORT = 2378


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmPaths:
    data_root: Path

    @property
    def root(self) -> Path:
        return self.data_root / "swarm"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def certs(self) -> Path:
        return self.root / "certificates"

    @property
    def ca_cert(self) -> Path:
        return self.certs / "ca.pem"

    @property
    def node_cert(self) -> Path:
        return self.certs / "node.pem"

    @property
    def node_key(self) -> Path:
        return self.certs / "node.key"

    @property
    def raft_dir(self) -> Path:
        return self.root / "raft"

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "daemon.log"

    @property
    def info_file(self) -> Path:
        return self.root / "info.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalState:
    node_id: str
    cluster_id: str
    role: NodeRole
    advertise_addr: str
    hostname: str = ""
    managers: tuple[str, ...] = ()  # "addr:2377" of every manager this node knows
    raft_peers: tuple[str, ...] = ()  # "addr:2378" of the Raft members at the last look
    raft_secret: str = ""  # encrypts Raft traffic between managers
    engine: str = ""  # the engine socket URL this node's daemon drives
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def control_addr(self) -> str:
        return f"{self.advertise_addr}:{CONTROL_PORT}"

    @property
    def raft_addr(self) -> str:
        return f"{self.advertise_addr}:{RAFT_PORT}"

    def with_(self, **changes: Any) -> LocalState:
        return replace(self, **changes)


def load_state(paths: SwarmPaths) -> LocalState | None:
    try:
        data = json.loads(paths.state_file.read_text())
    except FileNotFoundError:
        return None
    data["role"] = NodeRole(data["role"])
    data["managers"] = tuple(data.get("managers", ()))
    data["raft_peers"] = tuple(data.get("raft_peers", ()))
    return LocalState(**data)


def save_state(paths: SwarmPaths, state: LocalState) -> None:
    data = asdict(state)
    data["role"] = state.role.value
    write_atomic(paths.state_file, json.dumps(data, indent=2).encode())


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_certificates(paths: SwarmPaths, *, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
    write_atomic(paths.ca_cert, ca_pem, mode=0o644)
    write_atomic(paths.node_key, key_pem)
    write_atomic(paths.node_cert, cert_pem, mode=0o644)


def write_engine_info(paths: SwarmPaths, info: dict[str, Any]) -> None:
    """The `Swarm` section of the engine's `/info` (the engine reads this file, knowing nothing else of us)."""
    write_atomic(paths.info_file, json.dumps(info).encode(), mode=0o644)
