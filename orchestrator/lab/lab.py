"""`Lab`: several pynode hosts on one machine, each in its own network namespace on a shared bridge.

    lab = Lab.up(3, name="l1a2b3", subnet="10.88.4.0/24", state_dir=tmp)
    lab.exec("h2", "pynode", "info")     # runs inside h2, PYNODE_HOST pointing at h2's engine
    lab.cut("h2"); lab.heal("h2")        # a partition, by taking h2's veth down and up
    lab.kill("h2"); lab.start("h2")      # a crash, and a restart on the same data root
    lab.down()                           # removes every namespace, link, mount, process and file

`with Lab.up(...) as lab:` removes the lab on the way out.

Every change is recorded in the lab's state file first, so `Lab.remove(name, state_dir)` (what
`pyswarm lab down` runs) can clean up after a crash or a half-made `up`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.client import EngineClient
from orchestrator.daemon.localstate import SwarmPaths
from orchestrator.daemon.process import kill_daemon, running_pid, spawn_daemon, wait_for_socket
from orchestrator.lab import hosts as net
from orchestrator.lab import processes as proc
from orchestrator.lab.errors import LabError
from orchestrator.lab.plan import (
    DEFAULT_NAME,
    DEFAULT_STATE_ROOT,
    DEFAULT_SUBNET,
    RUN_DIR,
    check_lab_name,
    exec_root,
    lab_dir,
    plan_lab,
    socket_path,
)
from orchestrator.lab.state import LabHost, LabState, load_state, save_state

VENV_BIN = Path(sys.executable).parent
PYNODE = VENV_BIN / "pynode"
START_TIMEOUT = 60.0

Progress = Callable[[str, str], None]  # (host, message)


def _quiet(host: str, message: str) -> None:
    pass


class Lab:
    def __init__(self, state: LabState, *, pynode: Path = PYNODE, progress: Progress = _quiet) -> None:
        self.state = state
        self.pynode = pynode
        self.progress = progress

    # --- making and finding labs ------------------------------------------------------------------
    @classmethod
    def up(cls, n: int, *, name: str = DEFAULT_NAME, subnet: str = DEFAULT_SUBNET,
           state_dir: Path = DEFAULT_STATE_ROOT, pynode: Path = PYNODE, progress: Progress = _quiet,
           timeout: float = START_TIMEOUT) -> Lab:
        """Make a lab of `n` hosts and wait until every engine answers; on failure remove what was made."""
        state = plan_lab(name=name, hosts=n, subnet=subnet, state_root=state_dir)
        _check_free(state)
        lab = cls(state, pynode=pynode, progress=progress)
        try:
            lab._build(timeout=timeout)
        except BaseException as exc:
            try:
                lab.down()
            except LabError as cleanup:
                exc.add_note(f"removing the half-made lab also failed: {cleanup}")
            raise
        return lab

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    @classmethod
    def open(cls, *, name: str = DEFAULT_NAME, state_dir: Path = DEFAULT_STATE_ROOT,
             pynode: Path = PYNODE, progress: Progress = _quiet) -> Lab:
        """The lab recorded under `state_dir`; LabError if there is none."""
        state = load_state(lab_dir(state_dir, check_lab_name(name)))
        if state is None:
            raise LabError(f"no lab {name!r} under {state_dir} (start one with `pyswarm lab up N --name {name}`)")
        return cls(state, pynode=pynode, progress=progress)

    @classmethod
    def remove(cls, *, name: str = DEFAULT_NAME, state_dir: Path = DEFAULT_STATE_ROOT,
               progress: Progress = _quiet) -> None:
        """Remove the lab called `name`, from its state file when there is one, and by name patterns."""
        directory = lab_dir(state_dir, check_lab_name(name))
        state = load_state(directory) or LabState(
            name=name, subnet="", gateway="", bridge=f"{name}-br", state_dir=directory, hosts=())
        cls(state, progress=progress).down()

    def _build(self, *, timeout: float) -> None:
        save_state(self.state)
        net.ensure_bridge(self.state)
        for host in self.state.hosts:
            net.ensure_host_network(self.state, host)
            net.ensure_host_identity(host)
            self.progress(host.name, f"namespace {host.netns}, eth0 {host.address}/{self.state.prefixlen}")
        for host in self.state.hosts:
            self._spawn(host)
        self._warn_forward_drops()
        deadline = time.monotonic() + timeout
        for host in self.hosts:
            proc.wait_ready(host, _pid(host), deadline=deadline)
            self.progress(host.name, f"engine ready on {host.socket} (pid {host.pid})")

    def _warn_forward_drops(self) -> None:
        for chain in net.find_forward_drops():
            self.progress("-", f"warning: forward chain {chain} has policy drop; with bridge-nf-call-iptables=1 "
                          f"it drops traffic between lab hosts unless it accepts `iifname {self.state.bridge} "
                          f"oifname {self.state.bridge}` (e.g. `iptables -I DOCKER-USER -i {self.state.bridge} "
                          f"-o {self.state.bridge} -j ACCEPT`)")

    # --- reading ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.state.name

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        return self.state.hosts

    def host(self, name: str) -> LabHost:
        return self.state.host(name)

    def is_running(self, host: str) -> bool:
        found = self.host(host)
        return proc.is_running(found.pid, found)

    def is_cut(self, host: str) -> bool:
        return net.is_link_up(self.host(host).veth) is False

    def client(self, host: str, *, timeout: float = 60.0) -> EngineClient:
        return EngineClient(self.host(host).url, timeout=timeout)

    # --- running commands on a host ---------------------------------------------------------------
    def exec_argv(self, host: str, *cmd: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment running `cmd` on `host`, for callers that exec it themselves."""
        found = self.host(host)
        return proc.nsenter_argv(found, cmd), proc.host_env(found, venv_bin=self.pynode.parent)

    def exec(self, host: str, *cmd: str, timeout: float = 120.0, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run `cmd` on `host` (its network and UTS namespaces, PYNODE_HOST set); text out, no check."""
        argv, env = self.exec_argv(host, *cmd)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)

    # --- faults -----------------------------------------------------------------------------------
    def kill(self, host: str) -> None:
        """SIGKILL the host's pynode (and its swarm daemon), as a crash would; containers and data root stay."""
        found = self.host(host)
        if not proc.is_running(found.pid, found):
            raise LabError(f"{host}: its pynode is not running")
        if not proc.signal_and_wait(_pid(found), signal.SIGKILL, host=found, timeout=10.0):
            raise LabError(f"{host}: pynode (pid {found.pid}) survived SIGKILL")
        self._record_pid(host, None)
        kill_daemon(SwarmPaths(data_root=found.data_root))  # the node's swarm daemon shares the engine's fate

    def start(self, host: str, *, timeout: float = START_TIMEOUT) -> None:
        """Start the host's pynode again on the same data root and wait until it answers; a host that was in a
        swarm gets its swarm daemon back too."""
        found = self.host(host)
        if proc.is_running(found.pid, found):
            raise LabError(f"{host}: its pynode is already running (pid {found.pid})")
        self._spawn(found)
        proc.wait_ready(self.host(host), _pid(self.host(host)), deadline=time.monotonic() + timeout)
        paths = SwarmPaths(data_root=found.data_root)
        if paths.state_file.exists() and running_pid(paths) is None:  # the node was in a swarm: rejoin it
            spawn_daemon(found.url, paths)
            wait_for_socket(paths, timeout=timeout)

    def cut(self, host: str) -> None:
        """Drop all the host's traffic: its veth's bridge end goes down (a partition)."""
        net.set_link_up(self.host(host).veth, False)

    def heal(self, host: str) -> None:
        net.set_link_up(self.host(host).veth, True)

    def _spawn(self, host: LabHost) -> None:
        pid = proc.spawn_daemon(host, pynode=self.pynode)
        self._record_pid(host.name, pid)

    def _record_pid(self, host: str, pid: int | None) -> None:
        self.state = self.state.with_pid(host, pid)
        save_state(self.state)

    # --- removing ---------------------------------------------------------------------------------
    def down(self) -> None:
        """Remove everything the lab made; safe to run again, after a crash, or on a half-made lab."""
        hosts = self._all_hosts()
        for host in hosts:  # first every swarm daemon: an agent would start its tasks again as they go
            kill_daemon(SwarmPaths(data_root=host.data_root))
        for host in hosts:
            if proc.is_running(host.pid, host):
                self.progress(host.name, "stopping")
                proc.remove_containers(host)
                proc.stop_daemon(host.pid, host)
        self._sweep(hosts)
        self.progress("-", f"lab {self.name} removed")

    def _all_hosts(self) -> list[LabHost]:
        """Hosts from the state file, plus namespaces found by name (a state file lost or never written)."""
        known = {h.name: h for h in self.state.hosts}
        for ns in net.find_lab_netns(self.name):
            host = ns.removeprefix(f"{self.name}-")
            if host not in known:
                known[host] = LabHost(
                    name=host, netns=ns, veth=ns, address="", socket=socket_path(self.name, host),
                    exec_root=exec_root(self.name, host), base=self.state.state_dir / host)
        return list(known.values())

    def _sweep(self, hosts: list[LabHost]) -> None:
        paths = [self.state.state_dir, *(h.exec_root for h in hosts), *(h.socket for h in hosts)]
        # containers whose engine was gone (killed) keep running in their own namespaces: find them by their
        # sandboxes and their cgroups
        sandboxes = [ns for h in hosts for ns in proc.sandboxes(h)]
        containers = [cid for h in hosts for cid in proc.container_ids(h)]
        survivors = proc.kill_all(netns_paths=[*(h.netns_path for h in hosts), *sandboxes], paths=paths,
                                  container_ids=containers)
        proc.remove_cgroups(containers)
        failed = proc.unmount_under([self.state.state_dir, *(h.exec_root for h in hosts)])
        for ns in {h.netns for h in hosts} | set(net.find_lab_netns(self.name)):
            net.remove_netns(ns)
        for link in net.find_lab_links(self.name):
            net.remove_link(link)
        for path in [*(h.exec_root for h in hosts), *_lab_run_paths(self.name)]:
            _remove_path(path)
        if not failed:
            shutil.rmtree(self.state.state_dir, ignore_errors=True)
        if survivors or failed:
            raise LabError(f"lab {self.name}: could not remove processes {survivors} or mounts {failed}")


def _pid(host: LabHost) -> int:
    if host.pid is None:
        raise LabError(f"{host.name}: no pynode pid recorded")
    return host.pid


def _check_free(state: LabState) -> None:
    """Refuse to build over an existing lab of that name or a subnet already in use on this machine."""
    if state.state_file.exists() or net.find_lab_netns(state.name) or net.find_lab_links(state.name):
        raise LabError(f"lab {state.name!r} already exists; remove it with `pyswarm lab down --name {state.name}`")
    overlaps = net.find_overlaps(state.subnet)
    if overlaps:
        raise LabError(f"subnet {state.subnet} overlaps addresses in use here: {', '.join(overlaps)}")


def _lab_run_paths(lab: str) -> list[Path]:
    return sorted(RUN_DIR.glob(f"pynode-{lab}-h*"))


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)



