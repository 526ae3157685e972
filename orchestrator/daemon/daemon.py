"""`pyswarm daemon`: one process per node, beside its engine, holding the node's part of the cluster.

It serves the control API on `<data-root>/swarm/control.sock` (what `pyswarm` talks to) and, on a
manager, over mutual TLS on port 2377; a manager also runs its Raft member (port 2378) and, while
leading, the leader loops. Every node runs the agent. `init`, `join` and `leave` arrive as requests
on the local socket, as Docker's `/swarm/init|join|leave` do. The daemon shares its engine's fate:
when the engine stops answering it exits, and it is started again by the next `pyswarm` command on
the node (or by `pyswarm lab start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shutil
import signal
import socket
import time
from ipaddress import ip_address, ip_network
from typing import Any

import httpx

from node.client import EngineClient
from orchestrator.agent.agent import Agent
from orchestrator.allocator import INGRESS_SUBNET, INGRESS_VNI
from orchestrator.allocator.networks import plan_network
from orchestrator.daemon import peers
from orchestrator.daemon.localstate import (
    CONTROL_PORT,
    LocalState,
    SwarmPaths,
    load_state,
    save_certificates,
    save_state,
    write_engine_info,
)
from orchestrator.daemon.process import write_pid_file
from orchestrator.daemon.servers import ApiServer, local_server, restrict_socket, tls_server
from orchestrator.manager.api import create_app
from orchestrator.manager.errors import BadRequest, Conflict, Unavailable
from orchestrator.manager.manager import Manager
from orchestrator.model import (
    Cluster,
    ClusterSpec,
    Network,
    NetworkSpec,
    Node,
    NodeRole,
    NodeStatus,
    Resources,
    RootCAInfo,
)
from orchestrator.reconcile.plan import new_id
from orchestrator.security import (
    InvalidJoinToken,
    RootCA,
    check_ca_digest,
    client_context,
    generate_join_tokens,
    generate_key_and_csr,
    parse_join_token,
)
from orchestrator.store import Op

log = logging.getLogger(__name__)
ENGINE_FAILURES_TO_EXIT = 3
INGRESS_LABEL = "com.docker.swarm.internal"
IDLE_EXIT = 60.0  # a daemon started for init/join that got neither exits


class Daemon:
    def __init__(self, *, paths: SwarmPaths, engine_url: str) -> None:
        self.paths = paths
        self.engine_url = engine_url
        self.state: LocalState | None = load_state(paths)
        self.manager: Manager | None = None
        self.agent: Agent | None = None
        self.local: ApiServer | None = None
        self.tls: ApiServer | None = None
        self.hostname = socket.gethostname()
        self.resources = Resources()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._role_change: asyncio.Task[None] | None = None
        self._removal: asyncio.Task[dict[str, Any]] | None = None

    # --- process life ---------------------------------------------------------------------------------
    async def main(self) -> None:
        write_pid_file(self.paths)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        self._read_engine()
        self.local = local_server(create_app(self), self.paths)
        await self.local.start()
        restrict_socket(self.paths)
        if self.state is not None:
            await self._start_roles()
        watcher = loop.create_task(self._watch_engine())
        log.info("swarm daemon running for %s (%s)", self.engine_url, self.state.node_id if self.state else "no swarm")
        await self._stopping.wait()
        watcher.cancel()
        await self._stop_roles()
        await self.local.stop()
        with contextlib.suppress(FileNotFoundError):
            self.paths.pid_file.unlink()

    def _read_engine(self) -> None:
        with EngineClient(self.engine_url, timeout=10) as client:
            info = client.get("/info")
        self.hostname = str(info.get("Name") or self.hostname)
        self.resources = Resources(nano_cpus=int(info.get("NCPU", 0)) * 1_000_000_000,
                                   memory_bytes=int(info.get("MemTotal", 0)))

    async def _watch_engine(self) -> None:
        failures = 0
        started = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            with EngineClient(self.engine_url, timeout=2) as client:
                alive = await asyncio.to_thread(client.ping)
            failures = 0 if alive else failures + 1
            self._save_raft_peers()
            if failures >= ENGINE_FAILURES_TO_EXIT:
                log.warning("the engine at %s stopped answering: exiting with it", self.engine_url)
                self._stopping.set()
            if self.state is None and time.monotonic() - started > IDLE_EXIT and not self._lock.locked():
                self._stopping.set()

    def _save_raft_peers(self) -> None:
        """Keep the Raft membership on disk current, so a restart starts from the right peers."""
        if self.manager is None or self.state is None or self._lock.locked():
            return
        members = tuple(self.manager.proposer.members)
        if members != self.state.raft_peers and self.state.raft_addr in members:
            self.state = self.state.with_(raft_peers=members)
            save_state(self.paths, self.state)

    async def _start_roles(self) -> None:
        state = self._require_state()
        if state.role is NodeRole.MANAGER and self.manager is None:
            self.manager = await asyncio.to_thread(
                Manager.open, raft_addr=state.raft_addr, peers=list(state.raft_peers), raft_dir=self.paths.raft_dir,
                secret=state.raft_secret)
            self.manager.start()
        if self.tls is None:  # workers serve their tasks' logs to managers here
            self.tls = tls_server(create_app(self), self.paths, host=state.advertise_addr)
            await self.tls.start()
        if self.agent is None:
            managers = list(state.managers) or [state.control_addr]
            self.agent = Agent(paths=self.paths, engine_url=self.engine_url, node_id=state.node_id,
                               hostname=self.hostname, addr=state.advertise_addr, managers=managers,
                               on_reply=self._on_session_reply, on_removed=self._on_removed)
            self.agent.start()
        self._write_info()

    async def _stop_roles(self, *, agent: bool = True) -> None:
        if agent and self.agent is not None:
            await self.agent.stop()
            self.agent = None
        if self.tls is not None:
            await self.tls.stop()
            self.tls = None
        if self.manager is not None:
            await self.manager.stop()
            self.manager = None

    def _require_state(self) -> LocalState:
        if self.state is None:
            raise BadRequest("This node is not part of a swarm")
        return self.state

    def _write_info(self) -> None:
        state = self.state
        if state is None:
            with contextlib.suppress(FileNotFoundError):
                self.paths.info_file.unlink()
            return
        write_engine_info(self.paths, {
            "LocalNodeState": "active", "NodeID": state.node_id, "NodeAddr": state.advertise_addr,
            "ControlAvailable": state.role is NodeRole.MANAGER, "Error": "",
            "Cluster": {"ID": state.cluster_id},
            "RemoteManagers": [{"Addr": m} for m in state.managers],
        })

    def describe(self) -> dict[str, Any]:
        state = self.state
        return {
            "state": dataclasses.asdict(state) | {"role": state.role.value} if state else None,
            "manager": self.manager is not None,
            "leader": self.manager.proposer.leader if self.manager else None,
            "agent_connected": bool(self.agent and self.agent.connected),
            "agent_manager": self.agent.current if self.agent else None,
        }

    # --- init -------------------------------------------------------------------------------------------
    async def init(self, *, advertise_addr: str, heartbeat_period: float, force_new_cluster: bool) -> dict[str, Any]:
        async with self._lock:
            if force_new_cluster and self.state is not None:
                return await self._force_new_cluster()
            if self.state is not None:
                raise Conflict('This node is already part of a swarm. Use "pyswarm leave" to leave this swarm and '
                               "join another one.")
            if heartbeat_period <= 0:
                raise BadRequest("the dispatcher heartbeat period must be positive")
            addr = advertise_addr or guess_advertise_addr()
            check_local_addr(addr)
            try:
                result = await self._init(addr, heartbeat_period)
            except BaseException:
                await self._abandon()
                raise
            return result

    async def _init(self, addr: str, heartbeat_period: float) -> dict[str, Any]:
        ca = RootCA.create()
        cluster_id, node_id = new_id(), new_id()
        cert = ca.issue(node_id=node_id, role=NodeRole.MANAGER, cluster_id=cluster_id, addresses=[addr])
        save_certificates(self.paths, ca_pem=ca.cert_pem, cert_pem=cert.cert_pem, key_pem=cert.key_pem)
        state = LocalState(node_id=node_id, cluster_id=cluster_id, role=NodeRole.MANAGER, advertise_addr=addr,
                           hostname=self.hostname, managers=(f"{addr}:{CONTROL_PORT}",),
                           raft_peers=(f"{addr}:2378",), raft_secret=secrets.token_hex(16), engine=self.engine_url)
        manager = await asyncio.to_thread(Manager.open, raft_addr=state.raft_addr, peers=[],
                                          raft_dir=self.paths.raft_dir, secret=state.raft_secret)
        self.manager = manager
        await asyncio.to_thread(manager.proposer.wait_for_leader, 10.0)
        now = time.time()
        assert ca.key_pem is not None
        cluster = Cluster(
            id=cluster_id, spec=ClusterSpec(heartbeat_period=heartbeat_period),
            root_ca=RootCAInfo(cert_pem=ca.cert_pem.decode(), key_pem=ca.key_pem.decode(), cert_digest=ca.digest(),
                               join_tokens=generate_join_tokens(ca)),
            created_at=now, updated_at=now)
        node = Node(id=node_id, hostname=self.hostname, role=NodeRole.MANAGER, status=NodeStatus.READY, addr=addr,
                    resources=self.resources, created_at=now, updated_at=now)
        ingress = ingress_network(addr, now=now)
        await asyncio.to_thread(manager.store.transact, [Op.create(cluster), Op.create(node), Op.create(ingress)])
        save_state(self.paths, state)
        self.state = state
        manager.start()
        await self._start_roles()
        return {"node_id": node_id, "cluster_id": cluster_id, "addr": addr}

    async def _force_new_cluster(self) -> dict[str, Any]:
        state = self._require_state()
        if state.role is not NodeRole.MANAGER:
            raise BadRequest("--force-new-cluster needs a node that was a manager")
        await self._stop_roles()
        self.manager = await asyncio.to_thread(
            Manager.open, raft_addr=state.raft_addr, peers=[], raft_dir=self.paths.raft_dir,
            secret=state.raft_secret, force_new_cluster=True)
        self.state = state.with_(raft_peers=(state.raft_addr,), managers=(state.control_addr,))
        save_state(self.paths, self.state)
        self.manager.start()
        await self._demote_lost_managers()
        await self._start_roles()
        return {"node_id": state.node_id, "cluster_id": state.cluster_id, "addr": state.advertise_addr}

    async def _demote_lost_managers(self) -> None:
        """After --force-new-cluster the other managers are no Raft members: record them as workers."""
        assert self.manager is not None and self.state is not None
        store, me = self.manager.store, self.state.node_id
        ops = [Op.update(dataclasses.replace(n, role=NodeRole.WORKER, status=NodeStatus.DOWN))
               for n in store.list(Node) if n.role is NodeRole.MANAGER and n.id != me]
        if ops:
            await asyncio.to_thread(store.transact, ops)

    async def _abandon(self) -> None:
        """A failed init or join: leave nothing half-made."""
        await self._stop_roles()
        self.state = None
        self._wipe()

    def _wipe(self) -> None:
        for path in (self.paths.certs, self.paths.raft_dir):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.paths.state_file, self.paths.info_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # --- join -------------------------------------------------------------------------------------------
    async def join(self, *, remote_addr: str, token: str, advertise_addr: str) -> dict[str, Any]:
        async with self._lock:
            if self.state is not None:
                raise Conflict('This node is already part of a swarm. Use "pyswarm leave" to leave this swarm and '
                               "join another one.")
            parse_join_token(token)
            remote = remote_addr if ":" in remote_addr else f"{remote_addr}:{CONTROL_PORT}"
            addr = advertise_addr or guess_advertise_addr(remote.rsplit(":", 1)[0])
            check_local_addr(addr)
            try:
                return await self._join(remote, token, addr)
            except BaseException:
                await self._abandon()
                raise

    async def _join(self, remote: str, token: str, addr: str) -> dict[str, Any]:
        ca_pem = await _fetch_ca(remote)
        check_ca_digest(token, RootCA(cert_pem=ca_pem))
        key_pem, csr_pem = generate_key_and_csr()
        async with httpx.AsyncClient(verify=client_context(ca_pem=ca_pem), timeout=30) as client:
            response = await _post(client, remote, "/join-node", {
                "token": token, "csr_pem": csr_pem.decode(), "hostname": self.hostname, "addr": addr,
                "resources": {"nano_cpus": self.resources.nano_cpus, "memory_bytes": self.resources.memory_bytes}})
        if response.status_code == 401:
            raise InvalidJoinToken(peers.message_of(response))
        if response.status_code != 200:
            raise Unavailable(f"join refused by {remote}: {peers.message_of(response)}")
        reply = response.json()
        save_certificates(self.paths, ca_pem=ca_pem, cert_pem=reply["cert_pem"].encode(), key_pem=key_pem)
        state = LocalState(node_id=reply["node_id"], cluster_id=reply["cluster_id"], role=NodeRole(reply["role"]),
                           advertise_addr=addr, hostname=self.hostname, managers=tuple(reply["managers"]),
                           engine=self.engine_url)
        if state.role is NodeRole.MANAGER:
            state = await self._join_raft(state, remote)
        save_state(self.paths, state)
        self.state = state
        await self._start_roles()
        return {"node_id": state.node_id, "role": state.role.value, "cluster_id": state.cluster_id}

    async def _join_raft(self, state: LocalState, via: str) -> LocalState:
        async with peers.async_client(self.paths) as client:
            response = await _post(client, via, "/raft/join", {})
        if response.status_code != 200:
            raise Unavailable(f"joining the managers' Raft cluster through {via} failed: {peers.message_of(response)}")
        reply = response.json()
        state = state.with_(raft_peers=tuple(reply["peers"]), raft_secret=reply["secret"])
        manager = await asyncio.to_thread(Manager.open, raft_addr=state.raft_addr, peers=list(state.raft_peers),
                                          raft_dir=self.paths.raft_dir, secret=state.raft_secret)
        self.manager = manager
        await asyncio.to_thread(manager.proposer.wait_for_leader, 20.0)
        manager.start()
        return state

    # --- leave ------------------------------------------------------------------------------------------
    async def leave(self, *, force: bool) -> dict[str, Any]:
        async with self._lock:
            state = self._require_state()
            if state.role is NodeRole.MANAGER and not force:
                raise BadRequest("You are attempting to leave the swarm on a node that is participating as a manager. "
                                 "Removing the last manager erases all current state of the swarm, and removing a "
                                 "manager reduces the cluster's fault tolerance. Use `--force` to ignore this message.")
            started = time.monotonic()
            if self.manager is not None and len(self.manager.proposer.members) > 1:
                try:
                    await asyncio.to_thread(self.manager.remove_raft_member, state.advertise_addr)
                except Exception as exc:  # noqa: BLE001 - leaving goes on; the others will see it unreachable
                    log.warning("leaving the Raft cluster failed: %s", exc)
                log.info("leave: out of the Raft cluster after %.1f s", time.monotonic() - started)
            if self.agent is not None:
                await self.agent.stop()
                self.agent = None
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(_remove_task_containers, self.engine_url, state.node_id)
                log.info("leave: task containers removed after %.1f s", time.monotonic() - started)
            await self._stop_roles()
            log.info("leave: done after %.1f s", time.monotonic() - started)
            self.state = None
            self._wipe()
            asyncio.get_running_loop().call_later(0.3, self._stopping.set)
            return {"node_id": state.node_id}

    def _on_removed(self) -> None:
        """The managers removed this node (`node rm`): leave, as `pyswarm leave` would."""
        if self._removal is None:
            log.warning("this node was removed from the swarm: leaving it")
            self._removal = asyncio.get_running_loop().create_task(self.leave(force=True))

    # --- role changes seen in the session ---------------------------------------------------------------
    async def _on_session_reply(self, reply: dict[str, Any]) -> None:
        state = self.state
        if state is None:
            return
        managers = tuple(reply.get("managers") or state.managers)
        if managers != state.managers:
            self.state = state = state.with_(managers=managers)
            save_state(self.paths, state)
            self._write_info()
        role = NodeRole(reply.get("role", state.role.value))
        if role is not state.role and (self._role_change is None or self._role_change.done()):
            self._role_change = asyncio.get_running_loop().create_task(self._change_role(role))

    async def _change_role(self, role: NodeRole) -> None:
        try:
            async with self._lock:
                state = self._require_state()
                via = (self.agent.current if self.agent else None) or state.managers[0]
                await self._renew_certificate(via)
                if role is NodeRole.WORKER and self.manager is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.manager.remove_raft_member, state.advertise_addr)
                await self._stop_roles(agent=False)
                if role is NodeRole.MANAGER:
                    state = await self._join_raft(state.with_(role=role), via)
                else:
                    shutil.rmtree(self.paths.raft_dir, ignore_errors=True)
                    state = state.with_(role=role, raft_peers=(), raft_secret="")
                self.tls = tls_server(create_app(self), self.paths, host=state.advertise_addr)
                await self.tls.start()
                save_state(self.paths, state)
                self.state = state
                self._write_info()
                log.info("this node is a %s now", role.value)
        except Exception:
            log.exception("changing this node's role to %s failed", role.value)

    async def _renew_certificate(self, via: str) -> None:
        key_pem, csr_pem = generate_key_and_csr()
        async with peers.async_client(self.paths) as client:
            response = await _post(client, via, "/node/certificate", {"csr_pem": csr_pem.decode()})
        if response.status_code != 200:
            raise Unavailable(f"certificate renewal through {via} failed: {peers.message_of(response)}")
        save_certificates(self.paths, ca_pem=self.paths.ca_cert.read_bytes(),
                          cert_pem=response.json()["cert_pem"].encode(), key_pem=key_pem)


async def _fetch_ca(remote: str) -> bytes:
    """The CA certificate the manager shows; not trusted until the token's digest matches it."""
    try:
        async with httpx.AsyncClient(verify=False, timeout=10) as client:  # noqa: S501 - checked against the token
            response = await client.get(peers.url(remote, "/ca"))
    except (httpx.TransportError, OSError) as exc:
        raise Unavailable(f"could not reach a manager at {remote}: {exc}") from exc
    if response.status_code != 200:
        raise Unavailable(f"{remote} did not hand out its CA certificate: {peers.message_of(response)}")
    return response.content


async def _post(client: httpx.AsyncClient, remote: str, path: str, body: dict[str, Any]) -> httpx.Response:
    try:
        return await client.post(peers.url(remote, path), json=body, extensions=peers.SNI)
    except (httpx.TransportError, OSError) as exc:
        raise Unavailable(f"could not reach a manager at {remote}: {exc}") from exc


def _remove_task_containers(engine_url: str, node_id: str) -> None:
    from orchestrator.agent.executor import Executor

    executor = Executor(engine_url, node_id)
    try:
        executor.remove_all()
    finally:
        executor.close()


def guess_advertise_addr(towards: str = "192.0.2.1") -> str:
    """The local address the kernel would use to reach `towards` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((towards, 9))
            return str(sock.getsockname()[0])
        except OSError as exc:
            raise BadRequest("could not choose an IP address to advertise since this system has no route; "
                             "specify one with --advertise-addr") from exc


def check_local_addr(addr: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((addr, 0))
        except OSError as exc:
            raise BadRequest(f"advertise address {addr!r} is not an address of this node: {exc}") from exc


def run_daemon(*, data_root: str, engine_url: str) -> None:
    from pathlib import Path

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pysyncobj", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    daemon = Daemon(paths=SwarmPaths(data_root=Path(data_root)), engine_url=engine_url)
    asyncio.run(daemon.main())


def ingress_network(addr: str, *, now: float) -> Network:
    """The routing mesh's network, made at init as Docker makes it (10.0.0.0/24, VNI 4096; another /24 when
    the node's own address is in that one)."""
    wanted = NetworkSpec(name="ingress", ingress=True, labels={INGRESS_LABEL: "true"}, subnets=(INGRESS_SUBNET,))
    underlay = [ip_address(addr)] if addr else []
    if underlay and underlay[0] in ip_network(INGRESS_SUBNET):
        wanted = dataclasses.replace(wanted, subnets=())
    return plan_network(wanted, network_id=new_id(), existing=[], underlay=[a for a in underlay if a.version == 4],
                        now=now, vni=INGRESS_VNI)
