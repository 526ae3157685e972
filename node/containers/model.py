"""The container's persisted record (config.v2.json) and its Docker-shaped views (inspect, list)."""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


class Status(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class HealthStatus(enum.Enum):
    NONE = "none"
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    start: str
    end: str
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    status: HealthStatus = HealthStatus.STARTING
    failing_streak: int = 0
    log: tuple[Probe, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    status: Status = Status.CREATED
    pid: int = 0
    conmon_pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: Health | None = None

    @property
    def is_live(self) -> bool:
        """A process exists under conmon (running or paused)."""
        return self.status in (Status.RUNNING, Status.PAUSED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    id: str
    name: str
    created: str
    path: str
    args: tuple[str, ...]
    image_id: str
    config: dict[str, Any]  # Docker's Config, merged with the image's
    host_config: dict[str, Any]  # Docker's HostConfig, normalised
    mounts: tuple[dict[str, Any], ...] = ()  # Docker's MountPoint objects
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False
    runtime: str = "crun"
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    # Docker's NetworkingConfig.EndpointsConfig, keyed by network name, in connection order: the networks
    # (with aliases, IPAMConfig.IPv4Address) the container joins at every start; `network connect` adds one.
    endpoints_config: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def cgroups_path(self) -> str:
        return f"/pynode/{self.id}"

    def with_state(self, **changes: Any) -> Container:
        return replace(self, state=replace(self.state, **changes))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    if not value or value.startswith("0001"):
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- persistence ------------------------------------------------------------------------------------
def to_record(c: Container) -> dict[str, Any]:
    data = asdict(c)
    data["state"]["status"] = c.state.status.value
    if c.state.health is not None:
        data["state"]["health"]["status"] = c.state.health.status.value
    return data


def from_record(data: dict[str, Any]) -> Container:
    state = dict(data.get("state", {}))
    state["status"] = Status(state.get("status", "created"))
    health = state.get("health")
    if health is not None:
        state["health"] = Health(status=HealthStatus(health["status"]), failing_streak=health["failing_streak"],
                                 log=tuple(Probe(**p) for p in health.get("log", ())))
    fields = dict(data)
    fields["state"] = State(**state)
    fields["args"] = tuple(data.get("args", ()))
    fields["mounts"] = tuple(data.get("mounts", ()))
    return Container(**fields)


# --- Docker-shaped views ----------------------------------------------------------------------------
def health_json(h: Health) -> dict[str, Any]:
    return {"Status": h.status.value, "FailingStreak": h.failing_streak,
            "Log": [{"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output} for p in h.log]}


def state_json(s: State) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Status": s.status.value, "Running": s.status in (Status.RUNNING, Status.PAUSED),
        "Paused": s.status is Status.PAUSED, "Restarting": s.status is Status.RESTARTING,
        "OOMKilled": s.oom_killed, "Dead": s.status is Status.DEAD, "Pid": s.pid if s.is_live else 0,
        "ExitCode": s.exit_code, "Error": s.error, "StartedAt": s.started_at, "FinishedAt": s.finished_at,
    }
    if s.health is not None:
        out["Health"] = health_json(s.health)
    return out


def inspect_json(c: Container, *, exec_ids: list[str], graph: dict[str, Any] | None = None) -> dict[str, Any]:
    network_mode = c.host_config.get("NetworkMode", "none")
    return {
        "Id": c.id, "Created": c.created, "Path": c.path, "Args": list(c.args), "State": state_json(c.state),
        "Image": c.image_id, "ResolvConfPath": c.resolv_conf_path, "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path, "LogPath": c.log_path, "Name": f"/{c.name}", "RestartCount": c.restart_count,
        "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": exec_ids or None, "HostConfig": c.host_config,
        "GraphDriver": graph or {"Name": "overlay2", "Data": None}, "Mounts": list(c.mounts),
        "Config": c.config,
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {}, "SandboxKey": "",
                            "Networks": {network_mode: {"NetworkID": "", "EndpointID": "", "IPAddress": ""}}},
    }


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(s: State, *, now: float | None = None) -> str:
    """`ps` STATUS: 'Up 3 seconds (healthy)', 'Exited (3) 2 seconds ago', 'Created', ..."""
    now = time.time() if now is None else now
    if s.status in (Status.RUNNING, Status.PAUSED):
        text = f"Up {human_duration(now - parse_iso(s.started_at))}"
        if s.status is Status.PAUSED:
            return f"{text} (Paused)"
        if s.health is not None:
            health = "health: starting" if s.health.status is HealthStatus.STARTING else s.health.status.value
            text += f" ({health})"
        return text
    if s.status is Status.RESTARTING:
        return f"Restarting ({s.exit_code}) {human_duration(now - parse_iso(s.finished_at))} ago"
    if s.status is Status.EXITED:
        return f"Exited ({s.exit_code}) {human_duration(now - parse_iso(s.finished_at))} ago"
    if s.status is Status.REMOVING:
        return "Removal In Progress"
    if s.status is Status.DEAD:
        return "Dead"
    return "Created"


def list_json(c: Container, *, image_name: str) -> dict[str, Any]:
    command = " ".join([c.path, *c.args]).strip()
    return {
        "Id": c.id, "Names": [f"/{c.name}"], "Image": image_name, "ImageID": c.image_id, "Command": command,
        "Created": int(parse_iso(c.created)), "Ports": [], "Labels": c.config.get("Labels") or {},
        "State": c.state.status.value, "Status": status_text(c.state),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode", "none")},
        "NetworkSettings": {"Networks": {}}, "Mounts": list(c.mounts),
    }
