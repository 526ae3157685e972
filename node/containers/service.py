"""The container lifecycle: create, start, stop, kill, pause, remove, wait, logs; restart policy, health,
and re-adoption of containers that kept running under conmon while no daemon ran.

Kernel work goes through node.runtime (conmon, crun/runc, cgroups, the tmpfs of HostConfig.Files) and the
image store's overlay driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from node.config import DaemonConfig
from node.containers import health as hc
from node.containers import logs as lg
from node.containers import options as opt
from node.containers.attach import AttachOptions, ContainerAttach
from node.containers.model import (
    Container,
    Health,
    HealthStatus,
    Probe,
    Status,
    from_record,
    inspect_json,
    list_json,
    now_iso,
    parse_iso,
    to_record,
)
from node.containers.networking import ContainerNetworking
from node.containers.restart import RestartPolicy, next_delay, should_restart, starts_with_daemon
from node.errors import Conflict, EngineFailure, InvalidArgument, NodeError, NotFound, NotModified
from node.events import EventBus
from node.fsutil import read_json, write_json_atomic
from node.network import netns, ports
from node.runtime import console, memfiles, oci
from node.runtime.cgroups import Cgroups, detect_layout
from node.runtime.spec import BundleRequest, MountRequest, build_spec
from node.volumes.service import VolumeService

log = logging.getLogger(__name__)
INIT_BINARIES = ("catatonit", "tini-static", "tini")


class _Live:
    """Supervision of one container whose process runs: conmon's pidfd, its log pump, health task."""

    def __init__(self, *, pidfd: int | None, pump: lg.LogPump) -> None:
        self.pidfd = pidfd
        self.pump = pump
        self.started = time.monotonic()
        self.health_task: asyncio.Task[None] | None = None


class ContainerService:
    def __init__(self, config: DaemonConfig, *, events: EventBus, images: Any, volumes: VolumeService,
                 networks: Any = None) -> None:
        self.config = config
        self.events = events
        self.images = images
        self.volumes = volumes
        self.networks = networks
        self.net = ContainerNetworking(networks) if networks is not None else None
        self.root = config.data_root / "containers"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o710)
        self.files = memfiles.MemoryFiles(self.root)
        self.exit_dir = config.exec_root / "exits"
        self.socket_dir = config.exec_root / "s"
        for d in (self.exit_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        layout, side = detect_layout()
        self.cgroups = Cgroups(layout)
        self.runtimes: dict[str, oci.OciRuntime] = {}
        for name, binary in {"crun": "crun", "runc": "runc", **config.runtimes}.items():
            with contextlib.suppress(EngineFailure):
                self.runtimes[name] = oci.OciRuntime(
                    name=name, binary=binary, state_root=config.exec_root / "runtime" / name, layout=layout,
                    side_mounts=side, wrapper_dir=config.exec_root / "runtime" / "bin")
        self.containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._live: dict[str, _Live] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._removed: dict[str, asyncio.Event] = {}
        self._last_exit: dict[str, int] = {}
        self._exit_seq: dict[str, int] = {}
        self._restart_tasks: dict[str, asyncio.Task[None]] = {}
        self._delays: dict[str, float] = {}
        self._poller: asyncio.Task[None] | None = None
        self._wakers: dict[str, asyncio.Event] = {}
        self._shutting_down = False
        self._followers: dict[str, int] = {}
        self._attachers: dict[str, set[ContainerAttach]] = {}  # waiting for their container's next start
        self.execs: Any = None  # set by ExecService
        images.set_in_use_checker(self.using_image)
        volumes.set_in_use_checker(self.using_volume)

    # --- daemon lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        for bundle in sorted(self.root.iterdir()):
            record = read_json(bundle / "config.v2.json")
            if not record:  # a create (or a remove) that died half-way
                self._remove_files(bundle.name)
                shutil.rmtree(bundle, ignore_errors=True)
                continue
            c = from_record(record)
            self.containers[c.id] = c
            self._names[c.name] = c.id
        for c in list(self.containers.values()):
            await self._restore(c)
        if self.networks is not None:  # rules, DNS and port holds for exactly the containers that run
            running = [(c.id, c.state.pid if c.state.is_live else None) for c in self.containers.values()]
            await asyncio.to_thread(self.networks.restore, running)
        self._poller = asyncio.create_task(self._poll_logs())

    async def stop(self) -> None:
        self._shutting_down = True  # exits from here on restart nothing: the next daemon start decides
        for task in self._restart_tasks.values():
            task.cancel()
        if not self.config.live_restore:
            await self._stop_all()
        if self._poller:
            self._poller.cancel()
        loop = asyncio.get_running_loop()
        for live in self._live.values():
            if live.health_task:
                live.health_task.cancel()
            if live.pidfd is not None:
                loop.remove_reader(live.pidfd)
                os.close(live.pidfd)
            live.pump.pump()
            live.pump.close()

    async def _stop_all(self) -> None:
        """live-restore off: as dockerd at shutdown, stop every running container (its stop signal, SIGKILL
        after its stop timeout), all at once. Not by hand: restart policies bring them back at the next start."""
        async def stop_one(cid: str) -> None:
            async with self._lock(cid):
                c = self.containers.get(cid)
                if c is None or not c.state.is_live:
                    return
                try:
                    await self._stop_process(c, timeout=None)
                except (NodeError, OSError, TimeoutError) as exc:
                    log.warning("stopping %s at shutdown: %s", c.name, exc)
                    return
            self._publish(self.get(cid), "stop")

        await asyncio.gather(*(stop_one(c.id) for c in list(self.containers.values()) if c.state.is_live))

    async def _restore(self, c: Container) -> None:
        if c.state.is_live or c.state.status is Status.RESTARTING:
            alive = c.state.conmon_pid and oci.process_alive(c.state.conmon_pid, expect=c.id)
            if alive and c.state.is_live:
                self._watch(c)
                return
            if c.state.is_live or (self.exit_dir / c.id).exists():
                await self._handle_exit(c.id)
                return
        policy = RestartPolicy.of(c.host_config)
        if c.state.status in (Status.EXITED, Status.RESTARTING) and \
                starts_with_daemon(policy, manually_stopped=c.manually_stopped and policy.name != "always"):
            with contextlib.suppress(NodeError):
                await self.start_container(c.id)

    def info_fields(self) -> dict[str, Any]:
        states = [c.state.status for c in self.containers.values()]
        return {
            "Containers": len(states), "ContainersRunning": states.count(Status.RUNNING),
            "ContainersPaused": states.count(Status.PAUSED),
            "ContainersStopped": len(states) - states.count(Status.RUNNING) - states.count(Status.PAUSED),
            "Runtimes": {name: {"path": rt.binary} for name, rt in self.runtimes.items()},
        }

    # --- lookups ----------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        ref = ref.lstrip("/")
        if ref in self.containers:
            return self.containers[ref]
        if ref in self._names:
            return self.containers[self._names[ref]]
        matches = [cid for cid in self.containers if cid.startswith(ref)] if ref else []
        if len(matches) == 1:
            return self.containers[matches[0]]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def using_image(self, image_id: str) -> list[str]:
        return [c.id for c in self.containers.values() if c.image_id == image_id]

    def using_volume(self, name: str) -> list[str]:
        return [c.id for c in self.containers.values()
                if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.mounts)]

    def bundle(self, cid: str) -> Path:
        return self.root / cid

    def files_dir(self, cid: str) -> Path:
        """The tmpfs of HostConfig.Files (node.runtime.memfiles)."""
        return self.bundle(cid) / memfiles.FILES_DIR

    def _remove_files(self, cid: str) -> None:
        try:
            self.files.remove(self.files_dir(cid))
        except (NodeError, OSError) as exc:
            log.error("removing the files tmpfs of %s: %s", cid[:12], exc)

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _save(self, c: Container) -> Container:
        self.containers[c.id] = c
        write_json_atomic(self.bundle(c.id) / "config.v2.json", to_record(c))
        return c

    def _publish(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": str(c.config.get("Image", "")), "name": c.name, **extra}
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        self.events.publish(type_="container", action=action, actor_id=c.id, attributes=attrs)

    # --- create -------------------------------------------------------------------------------------
    async def create(self, body: dict[str, Any], name: str | None) -> dict[str, Any]:
        host_config = dict(body.get("HostConfig") or {})
        name = opt.validate_name(name) if name else None
        if name and name in self._names:
            other = self._names[name]
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container "{other}". '
                           'You have to remove (or rename) that container to be able to reuse that name.')
        host_config = self._validate_host_config(host_config)
        endpoints: dict[str, dict[str, Any]] = {}
        if self.net is not None:
            host_config["NetworkMode"], endpoints = await asyncio.to_thread(
                self.net.plan_endpoints, host_config, body.get("NetworkingConfig"))
        image_ref = str(body.get("Image") or "")
        if not image_ref:
            raise InvalidArgument("config cannot be empty in order to create a container")
        image = self.images.resolve(image_ref)
        config = opt.merge_config({k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")},
                                  image.config.get("config") or {}, image_ref=image_ref)
        mounts = opt.collect_mounts(host_config, config.get("Volumes"))
        for m in mounts:
            if m.type == "bind" and not os.path.exists(m.source):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: "
                                      f"{m.source}")
        files = opt.parse_files(host_config.get("Files"), mount_targets=[m.target for m in mounts])
        if "Files" in host_config:
            host_config["Files"] = opt.files_view(files)  # the content is kept on the tmpfs only
        cid = secrets.token_hex(32)
        name = name or _random_name(self._names)
        self._names[name] = cid
        bundle = self.bundle(cid)
        made_volumes: list[str] = []
        try:
            bundle.mkdir(mode=0o710)
            if files:
                self.files.place(self.files_dir(cid), files)
            self.images.driver.create_rw_layer(cid, image)
            mount_points = self._prepare_mounts(mounts, made_volumes)
            command = opt.command_of(config)
            if not config.get("Hostname"):
                config["Hostname"] = cid[:12] if host_config["NetworkMode"] != "host" else os.uname().nodename
            c = Container(
                id=cid, name=name, created=now_iso(), path=command[0], args=tuple(command[1:]),
                image_id=image.id, config=config, host_config=host_config, mounts=tuple(mount_points),
                runtime=host_config.get("Runtime") or self.config.default_runtime,
                log_path=str(bundle / f"{cid}-json.log"),
                hostname_path=str(bundle / "hostname"), hosts_path=str(bundle / "hosts"),
                resolv_conf_path=str(bundle / "resolv.conf"), endpoints_config=endpoints,
            )
            self._save(c)
        except BaseException:
            self._names.pop(name, None)
            self.containers.pop(cid, None)
            with contextlib.suppress(Exception):
                self.images.driver.remove_rw_layer(cid)
            for vol in made_volumes:
                with contextlib.suppress(NodeError):
                    self.volumes.remove(vol, force=True)
            self._remove_files(cid)
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        self._publish(c, "create")
        return {"Id": cid, "Warnings": []}

    def _validate_host_config(self, hc_: dict[str, Any]) -> dict[str, Any]:
        hc_["RestartPolicy"] = opt.validate_restart(hc_.get("RestartPolicy"), auto_remove=bool(hc_.get("AutoRemove")))
        opt.validate_resources(hc_)
        opt.resolve_caps(hc_)
        mode = hc_.get("NetworkMode") or "default"
        if mode in ("default", "bridge") and self.networks is None:
            mode = "none"
        if mode not in ("none", "host", "default", "bridge") and self.networks is None:
            raise NotFound(f"network {mode} not found")
        hc_["NetworkMode"] = mode
        if self.networks is not None:  # bad -p / -P input is refused at create, not at start
            ports.plan_host_config_bindings(hc_.get("PortBindings"), publish_all=False)
        runtime = hc_.get("Runtime") or self.config.default_runtime
        if runtime not in self.runtimes:
            raise InvalidArgument(f"unknown or invalid runtime name: {runtime}")
        hc_["Runtime"] = runtime
        log_config = hc_.get("LogConfig") or {}
        driver = log_config.get("Type") or self.config.log_driver
        if driver != "json-file":
            raise InvalidArgument(f"logger: no log driver named '{driver}' is registered")
        log_opts = {**self.config.log_opts, **(log_config.get("Config") or {})}
        lg.rotation_from_opts(log_opts)
        hc_["LogConfig"] = {"Type": driver, "Config": log_opts}
        if hc_.get("StopTimeout") is not None:
            hc_["StopTimeout"] = int(hc_["StopTimeout"])
        return hc_

    def _prepare_mounts(self, mounts: list[opt.MountSpec], made: list[str]) -> list[dict[str, Any]]:
        points = []
        for m in mounts:
            point: dict[str, Any] = {"Type": m.type, "Destination": m.target, "Mode": "ro" if m.read_only else "",
                                     "RW": not m.read_only, "Propagation": "rprivate" if m.type == "bind" else ""}
            if m.type == "volume":
                if m.source:
                    view, created = self.volumes.ensure(m.source)
                    if created:
                        made.append(m.source)
                else:
                    view = self.volumes.create(anonymous=True)
                    made.append(view["Name"])
                point.update(Name=view["Name"], Source=view["Mountpoint"], Driver="local",
                             Mode="z" if not m.read_only else "ro", NoCopy=m.no_copy,
                             Anonymous=not m.source)
            elif m.type == "bind":
                point["Source"] = os.path.abspath(m.source)
            else:
                point.update(Source="", Options=list(m.tmpfs_options))
            points.append(point)
        return points

    # --- start --------------------------------------------------------------------------------------
    async def start_container(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            c = self.get(c.id)
            if c.state.status is Status.PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.is_live:
                raise NotModified("container already started")
            task = self._restart_tasks.pop(c.id, None)
            if task:
                task.cancel()
            c = self._save(replace(c, manually_stopped=False))
            await self._run(c)

    async def _run(self, c: Container) -> None:
        runtime = self.runtimes[c.runtime]
        bundle = self.bundle(c.id)
        k8s_log = bundle / "ctr.log"
        try:
            rootfs = self.images.driver.mount(c.id)
            self._fill_volumes(c, rootfs)
            netns = await self._network_namespace(c)
            await self._write_etc_files(c)
            spec = build_spec(self._bundle_request(c, rootfs, netns))
            (bundle / "config.json").write_text(json.dumps(spec))
            k8s_log.unlink(missing_ok=True)
            (bundle / "k8s.offset").unlink(missing_ok=True)
            (self.exit_dir / c.id).unlink(missing_ok=True)
            handle = await runtime.launch(oci.LaunchRequest(
                container_id=c.id, name=c.name, bundle=bundle, log_path=k8s_log, exit_dir=self.exit_dir,
                socket_dir=self.socket_dir, terminal=c.tty, stdin=bool(c.config.get("OpenStdin")),
                stdin_once=bool(c.config.get("StdinOnce")),
                log_size_max=lg.conmon_log_limit(_rotation_of(c))))
            await self._connect_attachers(c)
            try:
                await runtime.start(c.id)
            except NodeError:
                oci.send_signal(handle.pid, signal.SIGKILL)
                raise
        except NodeError as exc:
            await self._cleanup_process(c)
            code = getattr(exc, "exit_code", 125) if isinstance(exc, oci.RuntimeStartError) else 125
            self._save(c.with_state(status=Status.CREATED if c.state.status is Status.CREATED else Status.EXITED,
                                    error=str(exc), exit_code=code if code != 125 else 128))
            raise
        health = Health() if hc.settings_of(c.config) else None
        c = self._save(c.with_state(status=Status.RUNNING, pid=handle.pid, conmon_pid=handle.conmon_pid,
                                    started_at=now_iso(), error="", exit_code=0, oom_killed=False, health=health))
        self._watch(c)
        self._publish(c, "start")

    def _watch(self, c: Container) -> None:
        bundle = self.bundle(c.id)
        pump = lg.LogPump(source=bundle / "ctr.log", target=Path(c.log_path), offset_file=bundle / "k8s.offset",
                          rotation=_rotation_of(c))
        pidfd = oci.open_pidfd(c.state.conmon_pid)
        live = _Live(pidfd=pidfd, pump=pump)
        self._live[c.id] = live
        self._exited.setdefault(c.id, asyncio.Event())
        if pidfd is None:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._handle_exit(c.id)))
        else:
            asyncio.get_running_loop().add_reader(pidfd, self._conmon_exited, c.id)
        settings = hc.settings_of(c.config)
        if settings is not None:
            live.health_task = asyncio.create_task(self._health_loop(c.id, settings))

    def _conmon_exited(self, cid: str) -> None:
        live = self._live.get(cid)
        if live and live.pidfd is not None:
            asyncio.get_running_loop().remove_reader(live.pidfd)
            os.close(live.pidfd)
            live.pidfd = None
        asyncio.ensure_future(self._handle_exit(cid))

    async def _network_namespace(self, c: Container) -> str | None:
        """The hook for networking: None = a new empty netns (`none`), "host" = the host's, or a netns path.

        With the network service: the sandbox it made, with every endpoint connected and ports published."""
        if self.net is not None:
            try:
                return await asyncio.to_thread(self.net.plumb, c)
            except NodeError:
                raise
            except Exception as exc:  # a kernel error from below: one line, and start's cleanup runs
                raise EngineFailure(f"setting up the network of {c.name}: {exc}") from exc
        mode = c.host_config.get("NetworkMode", "none")
        return "host" if mode == "host" else None

    def _bundle_request(self, c: Container, rootfs: Path, netns: str | None) -> BundleRequest:
        hc_ = c.host_config
        args = [c.path, *c.args]
        files = self._file_mounts(c)
        placed = {m.destination for m in files}
        mounts = [MountRequest(destination=d, source=str(self.bundle(c.id) / f), options=("rbind", "rprivate"))
                  for d, f in (("/etc/hostname", "hostname"), ("/etc/hosts", "hosts"),
                               ("/etc/resolv.conf", "resolv.conf")) if d not in placed]
        mounts += [self._mount_request(m) for m in c.mounts]
        if hc_.get("Init"):
            init = next((p for p in map(shutil.which, INIT_BINARIES) if p), None)
            if init is None:
                raise EngineFailure("--init: no catatonit or tini found on the host")
            mounts.append(MountRequest(destination="/dev/init", source=init, options=("bind", "ro")))
            args = ["/dev/init", "--", *args]
        mounts += files  # last: a file may sit inside a volume or a tmpfs mounted above
        uid, gid, groups = _resolve_user(rootfs, str(c.config.get("User") or ""))
        nano = int(hc_.get("NanoCpus") or 0)
        return BundleRequest(
            args=tuple(args), env=tuple(c.config.get("Env") or ()), cwd=c.config.get("WorkingDir") or "/",
            uid=uid, gid=gid, additional_gids=groups, terminal=c.tty, hostname=c.config.get("Hostname") or "",
            rootfs=str(rootfs), readonly_rootfs=bool(hc_.get("ReadonlyRootfs")), mounts=tuple(mounts),
            caps=opt.resolve_caps(hc_), privileged=bool(hc_.get("Privileged")),
            memory=int(hc_.get("Memory") or 0), memory_swap=int(hc_.get("MemorySwap") or 0),
            cpu_quota=nano * 100_000 // 1_000_000_000 if nano else int(hc_.get("CpuQuota") or 0),
            cpu_period=int(hc_.get("CpuPeriod") or 100_000), cpu_shares=int(hc_.get("CpuShares") or 0),
            pids_limit=max(int(hc_.get("PidsLimit") or 0), 0), netns=netns, cgroups_path=c.cgroups_path,
            sysctls=dict(hc_.get("Sysctls") or {}),
        )

    def _file_mounts(self, c: Container) -> list[MountRequest]:
        targets = [str(f["Target"]) for f in c.host_config.get("Files") or []]
        if not targets:
            return []
        directory = self.files_dir(c.id)
        if not self.files.is_mounted(directory):
            raise EngineFailure(f"the files of container {c.name} (HostConfig.Files) were held in memory and are "
                                "gone (did the host restart?): create the container again")
        return memfiles.mount_requests(directory, targets)

    @staticmethod
    def _mount_request(m: dict[str, Any]) -> MountRequest:
        ro = ("ro",) if not m.get("RW", True) else ()
        if m["Type"] == "tmpfs":
            return MountRequest(destination=m["Destination"], source="tmpfs", type="tmpfs",
                                options=("nosuid", "nodev", "noexec", *m.get("Options", ()), *ro))
        return MountRequest(destination=m["Destination"], source=m["Source"], options=("rbind", "rprivate", *ro))

    def _fill_volumes(self, c: Container, rootfs: Path) -> None:
        for m in c.mounts:
            if m.get("Type") == "volume" and not m.get("NoCopy"):
                source = rootfs / m["Destination"].lstrip("/")
                if source.is_dir() and not source.is_symlink():
                    self.volumes.populate(m["Name"], source)

    async def _write_etc_files(self, c: Container) -> None:
        """/etc/hostname, /etc/hosts, /etc/resolv.conf (bind-mounted files, rewritten in place)."""
        bundle = self.bundle(c.id)
        hostname = c.config.get("Hostname") or c.id[:12]
        (bundle / "hostname").write_text(f"{hostname}\n")
        if self.net is not None:
            hosts, resolv = await asyncio.to_thread(self.net.etc_files, c)
        else:
            hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            if c.host_config.get("NetworkMode") == "host":
                hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else hosts
            try:
                resolv = Path("/etc/resolv.conf").read_text()
            except OSError:
                resolv = ""
        (bundle / "hosts").write_text(hosts)
        (bundle / "resolv.conf").write_text(resolv)

    async def _cleanup_process(self, c: Container) -> None:
        """Everything a started process leaves behind: runtime state, cgroup, rootfs mount."""
        runtime = self.runtimes.get(c.runtime)
        if runtime is not None:
            await runtime.delete(c.id)
        self.cgroups.remove(c.cgroups_path)
        with contextlib.suppress(NodeError):
            self.images.driver.unmount(c.id)
        if self.net is not None:  # endpoints, addresses, published ports, DNS, the sandbox
            try:
                await asyncio.to_thread(self.net.release, c.id)
            except Exception:  # noqa: BLE001 - the rest of the cleanup goes on; the failure is logged
                log.exception("releasing the networking of %s failed", c.id[:12])

    # --- exits and restarts -------------------------------------------------------------------------
    async def _handle_exit(self, cid: str) -> None:
        live = self._live.pop(cid, None)
        c = self.containers.get(cid)
        if c is None:
            return
        if live is not None:
            if live.health_task:
                live.health_task.cancel()
            live.pump.pump()
            live.pump.flush()  # a last line without a newline is written once the process has exited
            live.pump.wake()
        exit_file = self.exit_dir / cid
        try:
            code = int(exit_file.read_text().strip())
        except (OSError, ValueError):
            code = 255
        oom = self.cgroups.oom_kills(c.cgroups_path) > 0
        await self._cleanup_process(c)
        exit_file.unlink(missing_ok=True)
        (self.bundle(cid) / "ctr.log").unlink(missing_ok=True)
        (self.bundle(cid) / "k8s.offset").unlink(missing_ok=True)
        ran_for = time.time() - parse_iso(c.state.started_at)
        c = self._save(c.with_state(status=Status.EXITED, pid=0, conmon_pid=0, exit_code=code, oom_killed=oom,
                                    finished_at=now_iso(), health=_health_on_exit(c)))
        self._last_exit[cid] = code
        self._exit_seq[cid] = self._exit_seq.get(cid, 0) + 1
        if oom:
            self._publish(c, "oom")
        self._publish(c, "die", exitCode=str(code))
        self._exited.pop(cid, asyncio.Event()).set()
        self._exited[cid] = asyncio.Event()
        self._wake(cid)
        policy = RestartPolicy.of(c.host_config)
        if not self._shutting_down and should_restart(policy, exit_code=code, restart_count=c.restart_count,
                                                      manually_stopped=c.manually_stopped):
            delay = next_delay(self._delays.get(cid, 0.0), ran_for=ran_for)
            self._delays[cid] = delay
            self._save(replace(c.with_state(status=Status.RESTARTING), restart_count=c.restart_count + 1))
            self._restart_tasks[cid] = asyncio.create_task(self._restart_later(cid, delay))
        elif c.host_config.get("AutoRemove"):
            await self._drain_followers(cid)
            with contextlib.suppress(NodeError):
                await self.remove(cid, force=True, volumes=True)

    async def _restart_later(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._restart_tasks.pop(cid, None)
        async with self._lock(cid):
            c = self.containers.get(cid)
            if c is None or c.state.status is not Status.RESTARTING:
                return
            try:
                await self._run(c)
                self._publish(self.containers[cid], "restart")
            except NodeError as exc:
                log.warning("restarting %s failed: %s", cid[:12], exc)

    # --- stop, kill, pause, restart -----------------------------------------------------------------
    async def stop_container(self, ref: str, *, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            c = self._save(replace(self.get(c.id), manually_stopped=True))
            task = self._restart_tasks.pop(c.id, None)
            if task:
                task.cancel()
                self._save(c.with_state(status=Status.EXITED))
            if not c.state.is_live:
                raise NotModified("container already stopped")
            await self._stop_process(c, timeout=timeout, sig=sig)
        self._publish(self.get(c.id), "stop")

    async def _stop_process(self, c: Container, *, timeout: int | None, sig: str | None = None) -> None:
        stop_signal = oci.parse_signal(sig or c.config.get("StopSignal"))
        if timeout is None:
            timeout = c.host_config.get("StopTimeout") or c.config.get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        exited = self._exited.setdefault(c.id, asyncio.Event())
        self._signal(c, stop_signal)
        if timeout < 0:
            await exited.wait()
            return
        try:
            await asyncio.wait_for(exited.wait(), timeout)
        except TimeoutError:
            self._signal(c, signal.SIGKILL)
            await asyncio.wait_for(exited.wait(), 30)

    def _signal(self, c: Container, sig: int) -> None:
        oci.send_signal(c.state.pid, sig)
        if c.state.status is Status.PAUSED:
            self.cgroups.freeze(c.cgroups_path, False)
            self._save(c.with_state(status=Status.RUNNING))

    async def kill_container(self, ref: str, sig: str | None = None) -> None:
        c = self.get(ref)
        number = oci.parse_signal(sig or "KILL")
        if not c.state.is_live:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if number == signal.SIGKILL:
            c = self._save(replace(c, manually_stopped=True))
        self._signal(c, number)
        self._publish(c, "kill", signal=str(number))

    async def restart_container(self, ref: str, *, timeout: int | None = None) -> None:
        c = self.get(ref)
        if c.state.is_live:
            with contextlib.suppress(NotModified):
                await self.stop_container(c.id, timeout=timeout)
        await self.start_container(c.id)
        self._publish(self.get(c.id), "restart")

    async def pause(self, ref: str, frozen: bool) -> None:
        c = self.get(ref)
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")
        if frozen and c.state.status is Status.PAUSED:
            raise Conflict(f"Container {c.id} is already paused")
        if not frozen and c.state.status is not Status.PAUSED:
            raise Conflict(f"Container {c.id} is not paused")
        self.cgroups.freeze(c.cgroups_path, frozen)
        c = self._save(c.with_state(status=Status.PAUSED if frozen else Status.RUNNING))
        self._publish(c, "pause" if frozen else "unpause")

    # --- network connect / disconnect ---------------------------------------------------------------
    async def connect_network(self, ref: str, network_ref: str, *, aliases: Any = (),
                              ipv4_address: str | None = None) -> None:
        """`network connect`: joined now if the container runs, and at every later start."""
        c = self.get(ref)
        if self.net is None:
            raise NotFound(f"network {network_ref} not found")
        async with self._lock(c.id):
            c = self.get(c.id)
            name, settings = await asyncio.to_thread(self.net.plan_connect, c, network_ref, aliases=aliases,
                                                     ipv4_address=ipv4_address)
            if c.state.is_live:
                await asyncio.to_thread(self.net.connect_live, c, name, settings)
                await self._write_etc_files(c)
            self._save(replace(c, endpoints_config={**c.endpoints_config, name: settings}))

    async def disconnect_network(self, ref: str, network_ref: str, *, force: bool = False) -> None:
        c = self.get(ref)
        if self.net is None:
            raise NotFound(f"network {network_ref} not found")
        async with self._lock(c.id):
            c = self.get(c.id)
            name = await asyncio.to_thread(self.net.plan_disconnect, c, network_ref, force=force)
            if name is None:
                return
            if c.state.is_live:
                await asyncio.to_thread(self.net.disconnect_live, c, name, force=force)
                await self._write_etc_files(c)
            self._save(replace(c, endpoints_config={k: v for k, v in c.endpoints_config.items() if k != name}))

    # --- remove, prune ------------------------------------------------------------------------------
    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.is_live and not force:
            raise Conflict(f"You cannot remove a running container {c.id}. Stop the container before attempting "
                           "removal or force remove")
        async with self._lock(c.id):
            if c.id not in self.containers:
                return
            c = self.containers[c.id]
            task = self._restart_tasks.pop(c.id, None)
            if task:
                task.cancel()
            if c.state.is_live:
                c = self._save(replace(c, manually_stopped=True))
                self._signal(c, signal.SIGKILL)
                await asyncio.wait_for(self._exited.setdefault(c.id, asyncio.Event()).wait(), 30)
            c = self._save(self.containers[c.id].with_state(status=Status.REMOVING))
            await self._cleanup_process(c)
            with contextlib.suppress(NodeError):
                self.images.driver.remove_rw_layer(c.id)
            self.files.remove(self.files_dir(c.id))  # a failure leaves the container (removing) for a retry
            self.containers.pop(c.id, None)
            self._names.pop(c.name, None)
            shutil.rmtree(self.bundle(c.id), ignore_errors=True)
            if volumes:
                for m in c.mounts:
                    if m.get("Type") == "volume" and m.get("Anonymous"):
                        with contextlib.suppress(NodeError):
                            self.volumes.remove(m["Name"])
        for session in self._attachers.pop(c.id, set()):
            session.abandon()
        self._locks.pop(c.id, None)
        self._exited.pop(c.id, None)
        self._delays.pop(c.id, None)
        self._publish(c, "destroy")
        self._removed.pop(c.id, asyncio.Event()).set()

    async def prune(self) -> dict[str, Any]:
        deleted = []
        for c in list(self.containers.values()):
            if c.state.status in (Status.EXITED, Status.CREATED, Status.DEAD):
                with contextlib.suppress(NodeError):
                    await self.remove(c.id)
                    deleted.append(c.id)
        return {"ContainersDeleted": deleted, "SpaceReclaimed": 0}

    # --- wait ----------------------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str = "not-running") -> int:
        c = self.get(ref)
        if condition == "removed":
            event = self._removed.setdefault(c.id, asyncio.Event())
            await event.wait()
            return self._last_exit.pop(c.id, 0)
        if condition == "not-running" and not c.state.is_live and c.state.status is not Status.RESTARTING:
            return c.state.exit_code
        await self._exited.setdefault(c.id, asyncio.Event()).wait()
        return self._last_exit.get(c.id, 0)

    def wait_events(self, ref: str, condition: str) -> tuple[str, asyncio.Event]:
        """Events to wait on, taken *now* (before a start), so a quick exit is not missed."""
        c = self.get(ref)
        if condition == "removed":
            return c.id, self._removed.setdefault(c.id, asyncio.Event())
        return c.id, self._exited.setdefault(c.id, asyncio.Event())

    def exit_code(self, cid: str) -> int:
        return self._last_exit.get(cid, 0)

    # --- attach, resize ------------------------------------------------------------------------------
    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool) -> ContainerAttach:
        """A session on the container's stdio: connected now if it runs, else when it next starts."""
        c = self.get(ref)
        options = AttachOptions(stdin=stdin and bool(c.config.get("OpenStdin")), stdout=stdout, stderr=stderr,
                                tty=c.tty)
        waiting = self._attachers.setdefault(c.id, set())
        session = ContainerAttach(self.bundle(c.id), options, on_close=waiting.discard)
        if c.state.is_live:
            await session.connect()
            if not session.connected:
                raise Conflict(f"Container {c.id} is not running")
        else:
            waiting.add(session)
        return session

    async def _connect_attachers(self, c: Container) -> None:
        """conmon runs and the process has not started yet: waiting sessions miss nothing."""
        for session in list(self._attachers.get(c.id, ())):
            await session.connect()
            self._attachers[c.id].discard(session)
        if c.tty and c.host_config.get("ConsoleSize"):
            height, width = (int(v) for v in c.host_config["ConsoleSize"][:2])
            if height and width:
                console.resize_container(self.bundle(c.id), height=height, width=width)

    def resize(self, ref: str, *, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")
        if height <= 0 or width <= 0 or height > 0xFFFF or width > 0xFFFF:
            raise InvalidArgument(f"invalid terminal size: {height}x{width}")
        if c.tty:
            console.resize_container(self.bundle(c.id), height=height, width=width)

    # --- logs ----------------------------------------------------------------------------------------
    async def _poll_logs(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            for cid, live in list(self._live.items()):
                try:
                    if live.pump.pump():
                        self._wake(cid)
                except OSError as exc:
                    log.warning("log pump: %s", exc)

    def _wake(self, cid: str) -> None:
        event = self._wakers.pop(cid, None)
        if event is not None:
            event.set()

    async def _drain_followers(self, cid: str) -> None:
        """Let attached streams read the last lines before the log goes away with the container."""
        for _ in range(200):
            if not self._followers.get(cid):
                return
            await asyncio.sleep(0.01)

    def logs(self, ref: str, q: lg.LogQuery, *, until_exit: bool = False) -> AsyncIterator[bytes]:
        """State is captured now (not when the stream is first read), so an exit right after is not missed."""
        c = self.get(ref)
        live = self._live.get(c.id)
        if live:
            live.pump.pump()
        target = Path(c.log_path)
        try:
            position = os.stat(target).st_size
        except FileNotFoundError:
            position = 0
        return self._stream_logs(c, q, until_exit=until_exit, seq=self._exit_seq.get(c.id, 0), position=position)

    async def _stream_logs(self, c: Container, q: lg.LogQuery, *, until_exit: bool, seq: int,
                           position: int) -> AsyncIterator[bytes]:
        tty = c.tty
        target = Path(c.log_path)
        entries = [] if until_exit else lg.select(list(lg.read_entries(target)), q)
        for e in entries:
            yield lg.render_entry(e, q, tty=tty)
        if not (q.follow or until_exit):
            return
        fh = _open_at(target, position)
        self._followers[c.id] = self._followers.get(c.id, 0) + 1
        try:
            while True:
                waker = self._wakers.setdefault(c.id, asyncio.Event())
                fh = _reopen_if_rotated(fh, target)
                for line in fh.readlines() if fh else []:
                    e = lg.decode_entry(line)
                    if e is not None and ((e.stream == "stdout" and q.stdout) or (e.stream == "stderr" and q.stderr)):
                        yield lg.render_entry(e, q, tty=tty)
                if fh is None:
                    fh = _open_at_start(target)
                    if fh is not None:
                        continue
                finished = self._exit_seq.get(c.id, 0) > seq if until_exit else \
                    (c.id not in self._live and (c.id not in self.containers or
                                                 self.containers[c.id].state.status is not Status.RESTARTING))
                if finished:
                    fh = fh or _open_at_start(target)
                    if fh is not None:
                        for line in fh.readlines():
                            e = lg.decode_entry(line)
                            if e is not None:
                                yield lg.render_entry(e, q, tty=tty)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), 1.0)
        finally:
            if fh is not None:
                fh.close()
            self._followers[c.id] -= 1
            if not self._followers[c.id]:
                self._followers.pop(c.id, None)

    # --- views ---------------------------------------------------------------------------------------
    def inspect(self, ref: str, *, size: bool = False) -> dict[str, Any]:
        c = self.get(ref)
        execs = self.execs.ids_of(c.id) if self.execs is not None else []
        out = inspect_json(c, exec_ids=execs)
        if self.net is not None:
            out["NetworkSettings"] = self.net.network_settings(c)
        if size:
            out["SizeRw"] = self.images.driver.rw_layer_size(c.id)
        return out

    def list(self, *, all_: bool = False, filters: dict[str, list[str]] | None = None,
             limit: int = -1) -> list[dict[str, Any]]:
        filters = filters or {}
        check_list_filters(filters)
        rows = sorted(self.containers.values(), key=lambda c: c.created, reverse=True)
        # Docker's own rule: the last value of `before` and of `since` is the one that counts
        before, since = (self.get(filters[k][-1]).id if filters.get(k) else None for k in ("before", "since"))
        rows = _created_between(rows, before=before, since=since)
        if not all_ and not filters.get("status"):
            rows = [c for c in rows if c.state.is_live or c.state.status is Status.RESTARTING]
        out = []
        for c in rows:
            view = list_json(c, image_name=str(c.config.get("Image", "")))
            if self.net is not None:
                view.update(self.net.list_fields(c))
            if _matches(c, filters, view=view):
                out.append(view)
        return out[:limit] if limit > 0 else out

    def stats(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        s = self.cgroups.stats(c.cgroups_path) if c.state.is_live else None
        mem_limit = (s.memory_limit if s else 0) or _host_memory()
        if mem_limit > 1 << 60:
            mem_limit = _host_memory()
        return {
            "id": c.id, "name": f"/{c.name}", "read": now_iso(),
            "pids_stats": {"current": s.pids_current if s else 0, "limit": s.pids_limit if s else 0},
            "memory_stats": {"usage": s.memory_usage if s else 0, "max_usage": s.memory_max_usage if s else 0,
                             "limit": mem_limit, "failcnt": s.oom_kills if s else 0},
            "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_usage_ns if s else 0},
                          "system_cpu_usage": _system_cpu_ns(), "online_cpus": os.cpu_count() or 1},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0},
            "networks": self._network_counters(c),
        }

    @staticmethod
    def _network_counters(c: Container) -> dict[str, dict[str, int]]:
        """Docker's `networks` of stats: the container's own interfaces (none with the host's network)."""
        if not c.state.is_live or not c.state.pid or c.host_config.get("NetworkMode") == "host":
            return {}
        return netns.interface_counters(c.state.pid)

    def top(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
                "Processes": oci.ps_rows(self.cgroups.pids(c.cgroups_path))}

    # --- health ---------------------------------------------------------------------------------------
    async def _health_loop(self, cid: str, settings: hc.HealthSettings) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(settings.interval)
            c = self.containers.get(cid)
            if c is None or c.state.status is not Status.RUNNING or self.execs is None:
                if c is None or not c.state.is_live:
                    return
                continue
            begin = now_iso()
            code, output = await self.execs.probe(cid, settings.argv, timeout=settings.timeout)
            probe = Probe(start=begin, end=now_iso(), exit_code=code, output=output)
            c = self.containers.get(cid)
            if c is None or c.state.health is None or not c.state.is_live:
                return
            in_start = time.monotonic() - started < settings.start_period
            new = hc.after_probe(c.state.health, probe, settings=settings, in_start_period=in_start)
            self._save(c.with_state(health=new))
            if new.status is not c.state.health.status:
                self._publish(c, f"health_status: {new.status.value}")


def _rotation_of(c: Container) -> lg.Rotation:
    return lg.rotation_from_opts((c.host_config.get("LogConfig") or {}).get("Config") or {})


def _health_on_exit(c: Container) -> Health | None:
    if c.state.health is None:
        return None
    return replace(c.state.health, status=HealthStatus.UNHEALTHY)


_HEALTH_VALUES = tuple(h.value for h in HealthStatus)


def check_list_filters(filters: dict[str, list[str]]) -> None:
    """Docker's refusals of bad values, before anything is listed."""
    for value in filters.get("health", []):
        if value not in _HEALTH_VALUES:
            raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    for key in ("publish", "expose"):
        for value in filters.get(key, []):
            _port_filter(key, value)


def _port_filter(key: str, value: str) -> set[tuple[int, str]]:
    """`80`, `80/udp`, `8000-8080/tcp` -> {(port, proto), ...} (tcp unless said), as Docker's portOp."""
    if ":" in value:
        raise InvalidArgument(f"filter for '{key}' should not contain ':': {value}")
    port, _, proto = value.partition("/")
    start, _, end = port.partition("-")
    if not start.isdigit() or not (end or start).isdigit() or int(start) > int(end or start):
        raise InvalidArgument(f"error while looking up for {key} {value}: invalid port range: {port}")
    return {(n, proto or "tcp") for n in range(int(start), int(end or start) + 1)}


def _created_between(rows: list[Container], *, before: str | None, since: str | None) -> list[Container]:
    """`before=X`: created before X; `since=X`: created after X. `rows` are newest first, as Docker walks them."""
    ids = [c.id for c in rows]
    if before is not None:
        rows = rows[ids.index(before) + 1:] if before in ids else []
        ids = [c.id for c in rows]
    if since is not None:
        rows = rows[:ids.index(since)] if since in ids else rows
    return rows


def _mounts_match(c: Container, values: list[str]) -> bool:
    """`volume=`: a volume's name (a bind's source) or any mount's destination."""
    names = {m.get("Name") or m.get("Source") for m in c.mounts} | {m.get("Destination") for m in c.mounts}
    return any(v in names for v in values)


def _networks_match(view: dict[str, Any], values: list[str]) -> bool:
    """`network=`: a network's name, or a prefix of its ID."""
    networks = (view.get("NetworkSettings") or {}).get("Networks") or {}
    return any(v in networks or any(v and str(n.get("NetworkID") or "").startswith(v) for n in networks.values())
               for v in values)


def _ports_match(view: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """`publish=` a host port, `expose=` a container port: either one matching is enough, as in Docker."""
    published = set().union(*(_port_filter("publish", v) for v in filters.get("publish", [])))
    exposed = set().union(*(_port_filter("expose", v) for v in filters.get("expose", [])))
    return any((int(p.get("PublicPort") or 0), p.get("Type")) in published or
               (int(p.get("PrivatePort") or 0), p.get("Type")) in exposed for p in view.get("Ports") or [])


def _matches(c: Container, filters: dict[str, list[str]], *, view: dict[str, Any]) -> bool:
    """Does one container pass every filter (`before`/`since` are applied to the whole list beforehand)?
    `view` is its `GET /containers/json` row: ports and networks as listed."""
    if ("publish" in filters or "expose" in filters) and not _ports_match(view, filters):
        return False
    for key, values in filters.items():
        if key == "health" and (c.state.health.status.value if c.state.health else "none") not in values:
            return False
        if key == "volume" and not _mounts_match(c, values):
            return False
        if key == "network" and not _networks_match(view, values):
            return False
        if key == "status" and c.state.status.value not in values:
            return False
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "exited" and not (c.state.status is Status.EXITED and str(c.state.exit_code) in values):
            return False
        if key == "label":
            labels = c.config.get("Labels") or {}
            for v in values:
                k, _, want = v.partition("=")
                if k not in labels or (want and labels[k] != want):
                    return False
        if key == "ancestor" and not any(v in (c.config.get("Image"), c.image_id) for v in values):
            return False
    return True


def _open_at(path: Path, position: int) -> Any:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the follower
    except FileNotFoundError:
        return None
    fh.seek(position)
    return fh


def _open_at_start(path: Path) -> Any:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the follower
    except FileNotFoundError:
        return None


def _reopen_if_rotated(fh: Any, path: Path) -> Any:
    if fh is None:
        return None
    try:
        current = os.stat(path).st_ino
    except FileNotFoundError:
        return fh
    if os.fstat(fh.fileno()).st_ino == current:
        return fh
    rest = fh.read()
    fh.close()
    new = open(path, "rb")  # noqa: SIM115
    if rest:  # lines from before the rotation are served by the caller's next readlines on a chained file
        import io

        return io.BufferedReader(io.BytesIO(rest + new.read()))  # type: ignore[arg-type]
    return new


def _resolve_user(rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...]]:
    if not user:
        return 0, 0, ()
    name, _, group = user.partition(":")
    passwd = _read_db(rootfs / "etc/passwd")
    uid = gid = None
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if e[2] == name), None)
        gid = int(entry[3]) if entry else 0
    else:
        entry = next((e for e in passwd if e[0] == name), None)
        if entry is None:
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(entry[2]), int(entry[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gentry = next((e for e in _read_db(rootfs / "etc/group") if e[0] == group), None)
            if gentry is None:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = int(gentry[2])
    return uid, gid or 0, ()


def _read_db(path: Path) -> list[list[str]]:
    try:
        return [line.split(":") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    except OSError:
        return []


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def _system_cpu_ns() -> int:
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:8]
        return sum(int(f) for f in fields) * 10_000_000
    except (OSError, ValueError):
        return 0


_ADJ = ("admiring", "brave", "clever", "eager", "focused", "gentle", "happy", "jolly", "keen", "lucid", "nifty",
        "quirky", "serene", "tender", "vibrant", "zealous")
_NOUN = ("turing", "hopper", "lovelace", "ritchie", "thompson", "knuth", "dijkstra", "curie", "noether", "shannon",
         "babbage", "pike", "torvalds", "wozniak", "kay", "liskov")


def _random_name(taken: dict[str, str]) -> str:
    while True:
        name = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}"
        if name not in taken:
            return name
        name = f"{name}{secrets.randbelow(10)}"
        if name not in taken:
            return name
