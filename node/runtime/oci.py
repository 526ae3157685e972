"""The OCI runtime driver: crun (default) or runc, each container supervised by conmon.

Runtime state lives under `<exec-root>/runtime/<name>` (`--root`), so daemons never share it. On a hybrid
cgroup host crun is reached through a wrapper script that runs it in a private mount namespace without the
cgroup2 side mounts (ENVIRONMENT.md); runc needs nothing. Every kernel-facing call of the container
subsystem is in this module: conmon spawns, runtime commands, signals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from node.errors import EngineFailure, InvalidArgument, NodeError
from node.runtime.cgroups import CgroupLayout

log = logging.getLogger(__name__)

CONMON = "conmon"


class RuntimeStartError(NodeError):
    """The runtime could not start the container's process; `exit_code` is Docker's (125, 126, 127)."""

    status = 400

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def classify_start_error(message: str) -> int:
    """Docker's mapping: 127 command not found, 126 not executable, else 125 (the engine failed)."""
    low = message.lower()
    if "not found" in low or "no such file or directory" in low:
        return 127
    if "permission denied" in low or "exec format error" in low or "is a directory" in low:
        return 126
    return 125


@dataclass(frozen=True, slots=True, kw_only=True)
class ConmonHandle:
    conmon_pid: int
    pid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchRequest:
    container_id: str
    name: str
    bundle: Path
    log_path: Path
    exit_dir: Path
    socket_dir: Path
    terminal: bool = False
    stdin: bool = False
    stdin_once: bool = False  # Docker's StdinOnce: the first attached client's end of input closes stdin
    log_size_max: int = 0  # conmon starts its k8s file afresh past this size (0: never)


def _wrapper_text(binary: str, side_mounts: tuple[str, ...]) -> str:
    unmounts = "; ".join(f"umount -l {m} 2>/dev/null" for m in side_mounts)
    return (
        "#!/bin/sh\n# pynode: run the OCI runtime in a private mount namespace without cgroup2 side mounts\n"
        f"exec unshare --mount --propagation private /bin/sh -c '{unmounts}; exec \"$0\" \"$@\"' {binary} \"$@\"\n"
    )


class OciRuntime:
    """One OCI runtime (`crun` or `runc`) as this daemon uses it."""

    def __init__(self, *, name: str, binary: str, state_root: Path, layout: CgroupLayout,
                 side_mounts: tuple[str, ...], wrapper_dir: Path) -> None:
        resolved = shutil.which(binary)
        if resolved is None:
            raise EngineFailure(f"OCI runtime {name!r}: {binary} not found in PATH")
        self.name = name
        self.binary = resolved
        self.state_root = state_root
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self._entry(layout, side_mounts, wrapper_dir)

    def _entry(self, layout: CgroupLayout, side_mounts: tuple[str, ...], wrapper_dir: Path) -> str:
        if layout is not CgroupLayout.HYBRID or "runc" in Path(self.binary).name:
            return self.binary
        wrapper = wrapper_dir / f"{self.name}-hybrid"
        wrapper_dir.mkdir(parents=True, exist_ok=True)
        text = _wrapper_text(self.binary, side_mounts)
        if not wrapper.exists() or wrapper.read_text() != text:
            tmp = wrapper.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(wrapper)
        return str(wrapper)

    def argv(self, *args: str) -> list[str]:
        """A direct runtime call. Only `create` (run by conmon through `self.path`) trips over a hybrid
        layout; start, state, kill, exec, pause, update and delete work as they are, and skipping the
        wrapper's two shells and a mount namespace saves ~10 ms on each."""
        return [self.binary, f"--root={self.state_root}", *args]

    # --- container lifecycle ---------------------------------------------------------------------
    async def launch(self, req: LaunchRequest) -> ConmonHandle:
        """conmon + `runtime create`; returns once the container is `created` (or raises why not)."""
        read_fd, write_fd = os.pipe()
        pidfile, conmon_pidfile = req.bundle / "pidfile", req.bundle / "conmon.pid"
        argv = [
            CONMON, "--api-version", "1", "-c", req.container_id, "-u", req.container_id, "-n", req.name,
            "-r", self.path, "-b", str(req.bundle), "-p", str(pidfile), "-P", str(conmon_pidfile),
            "-l", f"k8s-file:{req.log_path}", "--exit-dir", str(req.exit_dir),
            "--socket-dir-path", str(req.socket_dir), "--full-attach",
            "--runtime-arg", f"--root={self.state_root}", "--log-level", "error", "--no-sync-log",
        ]
        if req.log_size_max > 0:
            argv += ["--log-size-max", str(req.log_size_max)]
        if req.terminal:
            argv.append("-t")
        if req.stdin:
            # With a TTY the container's stdin is the pty master conmon also reads output from: never close it.
            argv += ["-i"] if req.stdin_once and not req.terminal else ["-i", "--leave-stdin-open"]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), env={**os.environ, "_OCI_SYNCPIPE": str(write_fd)},
                start_new_session=True, cwd=str(req.bundle),
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            raise EngineFailure(f"cannot run conmon: {exc}") from exc
        os.close(write_fd)
        try:
            _, err = await proc.communicate()
            message = await asyncio.to_thread(_read_sync_message, read_fd)
        finally:
            os.close(read_fd)
        if message is None:
            raise EngineFailure(f"conmon failed: {err.decode(errors='replace').strip() or 'no status'}")
        pid = int(message.get("data", -1))
        if pid <= 0:
            text = _clean_runtime_message(str(message.get("message", "")) or err.decode(errors="replace"))
            raise RuntimeStartError(f"failed to create task for container: {text}", classify_start_error(text))
        return ConmonHandle(conmon_pid=int(conmon_pidfile.read_text().strip()), pid=pid)

    async def start(self, container_id: str) -> None:
        await self._run("start", container_id)

    async def delete(self, container_id: str) -> None:
        try:
            await self._run("delete", "--force", container_id)
        except EngineFailure as exc:
            if "does not exist" not in str(exc) and "not exist" not in str(exc):
                log.warning("%s", exc)

    async def _run(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            text = _clean_runtime_message(err.decode(errors="replace"))
            raise EngineFailure(f"{self.name} {args[0]}: {text}")
        return out.decode(errors="replace")

    def state_dir_exists(self, container_id: str) -> bool:
        return (self.state_root / container_id).exists()

    # --- exec ------------------------------------------------------------------------------------
    async def exec(self, container_id: str, process_json: Path, *, detach: bool, stdin: bool,
                   console_socket: Path | None = None) -> asyncio.subprocess.Process:
        """`runtime exec`; with `console_socket` (and `terminal: true` in the process) the runtime sends the pty
        master there and the process's stdio is that pty, not our pipes."""
        args = ["exec", "--process", str(process_json)]
        if detach:
            args += ["--detach", "--pid-file", str(process_json.with_suffix(".pid"))]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        piped = not detach and console_socket is None
        return await asyncio.create_subprocess_exec(
            *self.argv(*args, container_id),
            stdin=subprocess.PIPE if stdin and piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )


def _read_sync_message(fd: int) -> dict[str, object] | None:
    """conmon writes `{"data": pid}` (or -1 and a message) on the sync pipe, then keeps it or closes it."""
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        for line in buf.splitlines():
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(msg, dict):
                return msg
    return None


def _clean_runtime_message(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    last = lines[-1]
    try:  # runc/crun may log JSON lines
        obj = json.loads(last)
        if isinstance(obj, dict) and "msg" in obj:
            return str(obj["msg"])
    except json.JSONDecodeError:
        pass
    return last


# --- process control without spawning the runtime -------------------------------------------------
def send_signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None


def process_alive(pid: int, *, expect: str | None = None) -> bool:
    """True if `pid` runs and (when given) its cmdline contains `expect` (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return expect is None or expect.encode() in cmdline


def parse_signal(value: str | int | None, default: int = signal.SIGTERM) -> int:
    if value is None or value == "":
        return int(default)
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    name = str(value).upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {value}") from None


def ps_rows(pids: list[int]) -> list[list[str]]:
    """`top`: the `ps -ef` columns for the given host pids."""
    if not pids:
        return []
    out = subprocess.run(["ps", "-o", "uid,pid,ppid,c,stime,tty,time,cmd", "-p", ",".join(map(str, pids))],
                         capture_output=True, text=True, check=False).stdout.splitlines()
    rows = []
    for line in out[1:]:
        parts = line.split(None, 7)
        if len(parts) == 8:
            rows.append(parts)
    return rows
