"""A lab's state: what `lab up` made (hosts, addresses, pids, paths), kept in `<state-dir>/<lab>/lab.json`.

Frozen dataclasses, a JSON codec, and atomic saves: `lab down` after a crash or a half-made `up` reads
this file to know what to remove, so it is written before anything is created and after every change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from node.fsutil import write_json_atomic
from orchestrator.lab.errors import LabError

STATE_FILE = "lab.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class LabHost:
    name: str          # h1, h2, ...
    netns: str         # <lab>-h1, as `ip netns` lists it
    veth: str          # root-side end of the host's veth (the host end is eth0 inside netns)
    address: str       # 10.77.0.2
    socket: Path       # /run/pynode-<lab>-h1.sock
    exec_root: Path    # /run/pynode-<lab>-h1
    base: Path         # <state-dir>/<lab>/h1: data root, log, uts namespace, daemon.json
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.base / "root"

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    @property
    def uts_path(self) -> Path:
        """A bind mount keeping the host's UTS namespace (its hostname) alive between processes."""
        return self.base / "uts"

    @property
    def config_file(self) -> Path:
        """The daemon's daemon.json (absent unless a user writes one), so /etc/pynode's never applies."""
        return self.base / "daemon.json"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns


@dataclass(frozen=True, slots=True, kw_only=True)
class LabState:
    name: str
    subnet: str        # 10.77.0.0/24
    gateway: str       # the bridge's address, the hosts' default route
    bridge: str
    state_dir: Path    # <state-dir>/<lab>
    hosts: tuple[LabHost, ...]

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise LabError(f"lab {self.name!r} has no host {name!r} (hosts: {known})")

    def with_pid(self, name: str, pid: int | None) -> LabState:
        hosts = tuple(replace(h, pid=pid) if h.name == name else h for h in self.hosts)
        return replace(self, hosts=hosts)


def save_state(state: LabState) -> None:
    write_json_atomic(state.state_file, encode_state(state))


def load_state(state_dir: Path) -> LabState | None:
    """The lab recorded in `state_dir`, or None when there is none. A corrupt file is an error."""
    path = state_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError) as exc:
        raise LabError(f"{path}: unreadable lab state ({exc}); remove the lab with `pyswarm lab down`") from exc
    return decode_state(raw)


def encode_state(state: LabState) -> dict[str, Any]:
    data = asdict(state)
    data["state_dir"] = str(state.state_dir)
    data["hosts"] = [_encode_host(h) for h in state.hosts]
    return data


def _encode_host(host: LabHost) -> dict[str, Any]:
    data = asdict(host)
    for key in ("socket", "exec_root", "base"):
        data[key] = str(data[key])
    return data


def decode_state(raw: dict[str, Any]) -> LabState:
    try:
        hosts = tuple(
            LabHost(**{**h, "socket": Path(h["socket"]), "exec_root": Path(h["exec_root"]), "base": Path(h["base"])})
            for h in raw["hosts"]
        )
        return LabState(**{**raw, "state_dir": Path(raw["state_dir"]), "hosts": hosts})
    except (KeyError, TypeError) as exc:
        raise LabError(f"lab state has an unexpected shape: {exc}") from exc
