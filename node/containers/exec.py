"""Exec instances: `crun exec` of a process spec derived from the container's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from node.containers import logs as lg
from node.containers.attach import Read, Write
from node.containers.model import Status
from node.containers.service import ContainerService, _resolve_user
from node.errors import Conflict, EngineFailure, InvalidArgument, NotFound
from node.runtime import console
from node.runtime.oci import classify_start_error
from node.runtime.spec import host_caps


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecInstance:
    id: str
    container_id: str
    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    user: str = ""
    workdir: str = ""
    tty: bool = False
    stdin: bool = False
    privileged: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.instances: dict[str, ExecInstance] = {}
        self._ptys: dict[str, int] = {}  # exec id -> pty master, while a TTY exec runs
        containers.execs = self

    def ids_of(self, cid: str) -> list[str]:
        return [e.id for e in self.instances.values() if e.container_id == cid]

    def create(self, ref: str, body: dict[str, Any]) -> str:
        c = self.containers.get(ref)
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.status is Status.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        cmd = body.get("Cmd") or []
        if not cmd:
            raise Conflict("No exec command specified")
        eid = secrets.token_hex(32)
        self.instances[eid] = ExecInstance(
            id=eid, container_id=c.id, cmd=tuple(cmd), env=tuple(body.get("Env") or ()), user=body.get("User") or "",
            workdir=body.get("WorkingDir") or "", tty=bool(body.get("Tty")), stdin=bool(body.get("AttachStdin")),
            privileged=bool(body.get("Privileged")))
        self.containers._publish(c, f"exec_create: {' '.join(cmd)}", execID=eid)
        return eid

    def get(self, eid: str) -> ExecInstance:
        try:
            return self.instances[eid]
        except KeyError:
            raise NotFound(f"No such exec instance: {eid}") from None

    def inspect(self, eid: str) -> dict[str, Any]:
        e = self.get(eid)
        return {"ID": e.id, "ContainerID": e.container_id, "Running": e.running, "ExitCode": e.exit_code,
                "Pid": e.pid, "OpenStdin": e.stdin, "OpenStdout": True, "OpenStderr": True,
                "ProcessConfig": {"entrypoint": e.cmd[0], "arguments": list(e.cmd[1:]), "tty": e.tty,
                                  "user": e.user, "privileged": e.privileged}}

    def _process_json(self, e: ExecInstance, *, terminal: bool = False,
                      console_size: tuple[int, int] | None = None) -> Path:
        bundle = self.containers.bundle(e.container_id)
        spec = json.loads((bundle / "config.json").read_text())
        process = spec["process"]
        c = self.containers.get(e.container_id)
        env = {v.split("=", 1)[0]: v for v in [*process.get("env", []), *e.env]}
        process.update(args=list(e.cmd), env=list(env.values()), terminal=terminal)
        process.pop("consoleSize", None)
        if terminal and console_size:
            process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
        if e.workdir:
            process["cwd"] = e.workdir
        if e.user:
            uid, gid, _ = _resolve_user(Path(spec["root"]["path"]), e.user)
            process["user"] = {"uid": uid, "gid": gid}
        if e.privileged:
            process["capabilities"] = {k: list(host_caps()) for k in ("bounding", "effective", "permitted")}
        path = bundle / f"exec-{e.id[:16]}.json"
        path.write_text(json.dumps(process))
        del c
        return path

    async def start(self, eid: str, *, detach: bool, stdin_data: bytes | None = None) -> AsyncIterator[bytes]:
        e = self.get(eid)
        if e.running or e.exit_code is not None:
            raise Conflict(f"Error: Exec command {eid} has already run")
        c = self.containers.get(e.container_id)
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")
        runtime = self.containers.runtimes[c.runtime]
        spec_path = self._process_json(e)
        proc = await runtime.exec(c.id, spec_path, detach=detach, stdin=stdin_data is not None)
        self.instances[eid] = e = replace(e, running=True, pid=proc.pid)
        self.containers._publish(c, f"exec_start: {' '.join(e.cmd)}", execID=eid)
        try:
            if detach:
                await proc.wait()
                self.instances[eid] = replace(e, running=proc.returncode == 0, exit_code=None if proc.returncode == 0
                                              else classify_start_error((await proc.stderr.read()).decode()))  # type: ignore[union-attr]
                return
            tail = _Tail(None)
            async for chunk in _stream(proc, stdin_data, tty=e.tty):
                tail.keep(chunk)
                yield chunk
            code = tail.exit_code(await proc.wait())
        finally:
            spec_path.unlink(missing_ok=True)
        self.instances[eid] = replace(e, running=False, exit_code=code)
        self.containers._publish(c, "exec_die", execID=eid, exitCode=str(code))

    async def serve(self, eid: str, read: Read, write: Write, *, console_size: tuple[int, int] | None = None) -> None:
        """A hijacked `exec start`: the client's bytes to the process's stdin (when AttachStdin) and its output
        back (raw through a pty with Tty, else multiplexed frames), until the process ends."""
        e = self.get(eid)
        c = self._check_startable(e)
        runtime = self.containers.runtimes[c.runtime]
        tty_socket = console.ConsoleSocket(self.containers.socket_dir / f"{eid[:16]}.tty") if e.tty else None
        spec_path = self._process_json(e, terminal=e.tty, console_size=console_size)
        code = 126  # what the instance reports if serving fails before the process's own code is known
        tail = _Tail(write)
        write = tail.write
        try:
            proc = await runtime.exec(c.id, spec_path, detach=False, stdin=e.stdin,
                                      console_socket=tty_socket.path if tty_socket else None)
            self.instances[eid] = e = replace(e, running=True, pid=proc.pid)
            self.containers._publish(c, f"exec_start: {' '.join(e.cmd)}", execID=eid)
            if tty_socket is not None:
                master = await _receive_master(tty_socket, proc)
                tty_socket.close()
                tty_socket = None
                if master is None:
                    code = await proc.wait()
                    err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                    await write(f"exec failed: {err.strip() or 'no terminal'}\r\n".encode())
                else:
                    self._ptys[eid] = master
                    try:
                        await _serve_pty(master, read, write, stdin=e.stdin)
                    finally:
                        self._ptys.pop(eid, None)
                        os.close(master)
                    code = await proc.wait()
            else:
                await _serve_pipes(proc, read, write, stdin=e.stdin)
                code = await proc.wait()
            code = tail.exit_code(code)
        finally:
            spec_path.unlink(missing_ok=True)
            if tty_socket is not None:
                tty_socket.close()
            self.instances[eid] = replace(e, running=False, exit_code=code)
            if e.running:
                self.containers._publish(c, "exec_die", execID=eid, exitCode=str(code))

    def resize(self, eid: str, *, height: int, width: int) -> None:
        e = self.get(eid)
        if height <= 0 or width <= 0 or height > 0xFFFF or width > 0xFFFF:
            raise InvalidArgument(f"invalid terminal size: {height}x{width}")
        master = self._ptys.get(e.id)
        if master is None:
            if e.tty and not e.running:
                raise Conflict(f"Exec {e.id} is not running")
            return
        console.resize_pty(master, height=height, width=width)

    def check_startable(self, eid: str) -> None:
        self._check_startable(self.get(eid))

    def _check_startable(self, e: ExecInstance) -> Any:
        if e.running or e.exit_code is not None:
            raise Conflict(f"Error: Exec command {e.id} has already run")
        c = self.containers.get(e.container_id)
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")
        if c.runtime not in self.containers.runtimes:
            raise EngineFailure(f"unknown runtime {c.runtime}")
        return c

    async def probe(self, cid: str, argv: tuple[str, ...], *, timeout: float) -> tuple[int, str]:
        """A healthcheck probe: run `argv` in the container; (exit code, output)."""
        eid = secrets.token_hex(32)
        self.instances[eid] = ExecInstance(id=eid, container_id=cid, cmd=argv)
        out = b""
        try:
            async with asyncio.timeout(timeout):
                async for chunk in self.start(eid, detach=False):
                    out += chunk[8:]
            code = self.instances[eid].exit_code or 0
        except TimeoutError:
            return -1, f"Health check exceeded timeout ({timeout}s)"
        except Exception as exc:  # noqa: BLE001 - a failed probe is a result, not an error
            return -1, str(exc)
        finally:
            self.instances.pop(eid, None)
        return code, out.decode(errors="replace")


class _Tail:
    """Passes output on and keeps its last bytes: the runtime's own message when the process could not start."""

    def __init__(self, write: Write | None) -> None:
        self._write = write
        self.data = b""

    def keep(self, chunk: bytes) -> None:
        self.data = (self.data + chunk)[-2048:]

    async def write(self, chunk: bytes) -> None:
        self.keep(chunk)
        if self._write is not None:
            await self._write(chunk)

    def exit_code(self, code: int) -> int:
        """Docker's 127 (not found) / 126 (cannot run) when the runtime, not the process, failed (crun: 255)."""
        text = self.data.decode(errors="replace").lower()
        if code == 255 and any(m in text for m in ("executable file", "open executable", "exec failed",
                                                     "exec format error", "permission denied",
                                                     "no such file or directory")):
            return 126 if classify_start_error(text) == 125 else classify_start_error(text)
        return code


async def _receive_master(sock: console.ConsoleSocket, proc: asyncio.subprocess.Process) -> int | None:
    """The pty master the runtime sends, or None if the runtime ended first (it failed)."""
    receiving = asyncio.create_task(sock.receive_master())
    ended = asyncio.create_task(proc.wait())
    await asyncio.wait({receiving, ended}, return_when=asyncio.FIRST_COMPLETED)
    if not receiving.done():  # the runtime ended first; it may still have sent the master (and its error there)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(receiving), 0.5)
    ended.cancel()
    if receiving.done() and not receiving.cancelled() and receiving.exception() is None:
        return receiving.result()
    receiving.cancel()
    await asyncio.gather(receiving, ended, return_exceptions=True)
    return None


async def _serve_pty(master: int, read: Read, write: Write, *, stdin: bool) -> None:
    async def inbound() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await read()
                if data and stdin:
                    await console.write_fd(master, data)
                elif not data:
                    await asyncio.sleep(0.05)  # input ended: wait for the client to go away

    async def outbound() -> None:
        while chunk := await console.read_fd(master):
            await write(chunk)

    await _until_output_ends(inbound(), outbound())


async def _serve_pipes(proc: asyncio.subprocess.Process, read: Read, write: Write, *, stdin: bool) -> None:
    async def inbound() -> None:
        pipe = proc.stdin if stdin else None
        try:
            while True:
                data = await read()
                if pipe is not None and data:
                    pipe.write(data)
                    await pipe.drain()
                elif pipe is not None:
                    pipe.close()
                    pipe = None
                elif not data:
                    await asyncio.sleep(0.05)  # input ended: wait for the client to go away
        except (ConnectionError, OSError):
            pass
        finally:  # the client is gone: the process sees the end of its input
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()

    async def outbound() -> None:
        async for chunk in _stream(proc, None, tty=False):
            await write(chunk)

    reader = asyncio.create_task(inbound())
    try:
        await outbound()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()


async def _until_output_ends(inbound: Any, outbound: Any) -> None:
    """Runs both until the output ends, or until the input side returns (the client is gone)."""
    tasks = [asyncio.create_task(inbound), asyncio.create_task(outbound)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _stream(proc: asyncio.subprocess.Process, stdin_data: bytes | None, *, tty: bool) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()

    async def pipe(name: str, reader: asyncio.StreamReader | None) -> None:
        if reader is not None:
            while chunk := await reader.read(65536):
                await queue.put((name, chunk))
        await queue.put(None)

    if stdin_data is not None and proc.stdin is not None:
        proc.stdin.write(stdin_data)
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
    tasks = [asyncio.create_task(pipe("stdout", proc.stdout)), asyncio.create_task(pipe("stderr", proc.stderr))]
    done = 0
    while done < 2:
        item = await queue.get()
        if item is None:
            done += 1
            continue
        yield lg.frame(item[0], item[1], tty=tty)
    await asyncio.gather(*tasks)
