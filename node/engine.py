"""The engine: one object per daemon holding every subsystem (images, containers, volumes, networks).

API routers reach it as `request.app.state.engine`. Subsystems are plain objects built here; those
with background work expose `async start()` / `async stop()`, called in that order at daemon start
and in reverse at shutdown. Stopping the daemon stops containers only with `live-restore: false` (as
dockerd); else they keep running under conmon and the next daemon adopts them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
from typing import Any

from node.builder.executor import BuildService
from node.config import DaemonConfig
from node.containers.exec import ExecService
from node.containers.service import ContainerService
from node.events import EventBus
from node.images.store import ImageStore
from node.network.service import NetworkService
from node.volumes.service import VolumeService

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.events = EventBus()
        self.stopping = asyncio.Event()  # set when the daemon begins to shut down: follow streams end then
        config.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        config.exec_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        # Subsystems: each owner adds its line here, in dependency order.
        self._subsystems: list[Any] = []
        self.images = ImageStore(config.data_root, events=self.events)
        self._subsystems.append(self.images)
        self.networks = NetworkService(config, events=self.events)
        self._subsystems.append(self.networks)
        self.volumes = VolumeService(config.data_root, events=self.events)
        self._subsystems.append(self.volumes)
        self.containers = ContainerService(config, events=self.events, images=self.images, volumes=self.volumes,
                                           networks=self.networks)
        self.execs = ExecService(self.containers)
        self._subsystems.append(self.containers)
        self.builder = BuildService(images=self.images, containers=self.containers, data_root=config.data_root,
                                    exec_root=config.exec_root)
        self._subsystems.append(self.builder)

    async def start(self) -> None:
        for sub in self._subsystems:
            if hasattr(sub, "start"):
                await sub.start()

    def begin_shutdown(self) -> None:
        """The daemon stops taking requests: end the streams that only end with it (events, logs -f, wait)."""
        self.stopping.set()

    async def stop(self) -> None:
        for sub in reversed(self._subsystems):
            if hasattr(sub, "stop"):
                try:
                    await sub.stop()
                except Exception:  # noqa: BLE001 - shutdown goes on; the failure is logged
                    log.exception("stopping %s failed", type(sub).__name__)

    def info(self) -> dict[str, Any]:
        """`/info`: Docker's field names. Subsystems contribute through `info_fields()`."""
        uname = platform.uname()
        fields: dict[str, Any] = {
            "ID": self.config.data_root.as_posix(),
            "Driver": self.config.storage_driver,
            "DockerRootDir": str(self.config.data_root),
            "ExecRoot": str(self.config.exec_root),
            "KernelVersion": uname.release,
            "OperatingSystem": _os_pretty_name(),
            "OSType": "linux",
            "Architecture": uname.machine,
            "Name": uname.node,
            "NCPU": _ncpu(),
            "MemTotal": _mem_total(),
            "LoggingDriver": self.config.log_driver,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "LiveRestoreEnabled": self.config.live_restore,
            "Labels": list(self.config.labels),
            "Images": 0, "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
            "Runtimes": {}, "DefaultRuntime": self.config.default_runtime,
            "Swarm": self._swarm_info(),
        }
        for sub in self._subsystems:
            if hasattr(sub, "info_fields"):
                fields.update(sub.info_fields())
        return fields

    def _swarm_info(self) -> dict[str, Any]:
        """What a cluster agent on this host last wrote to `<data-root>/swarm/info.json`, else inactive.

        The engine knows nothing of the cluster; this file is the one hook it offers."""
        try:
            found = json.loads((self.config.data_root / "swarm" / "info.json").read_text())
        except (OSError, ValueError):
            found = None
        if isinstance(found, dict):
            return found
        return {"LocalNodeState": "inactive", "NodeID": "", "ControlAvailable": False}

    def disk_usage(self) -> dict[str, Any]:
        """`/system/df`: Docker's fields. Subsystems contribute through `df_fields()`."""
        fields: dict[str, Any] = {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []}
        for sub in self._subsystems:
            if hasattr(sub, "df_fields"):
                fields.update(sub.df_fields())
        if not hasattr(self.containers, "df_fields"):  # until the container service reports its own part
            fields["Containers"] = [{**row, "SizeRw": self.images.driver.rw_layer_size(row["Id"])}
                                    for row in self.containers.list(all_=True)]
        return fields


def cgroup_version() -> str:
    """'2' on a unified hierarchy, '1' on v1 or hybrid (v1 controllers with a cgroup2 side mount)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                parts = line.split()
                mount_point, fstype = parts[4], parts[parts.index("-") + 1]
                if mount_point == "/sys/fs/cgroup" and fstype == "cgroup2":
                    return "2"
    except OSError:
        pass
    return "1"


def _os_pretty_name() -> str:
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _ncpu() -> int:
    import os

    return os.cpu_count() or 1


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
