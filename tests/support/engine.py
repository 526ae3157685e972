"""A real `pynode daemon` per test (or per worker) on its own data root, exec root and socket.

Paths are short (unix socket paths are limited to 108 bytes) and unique, so parallel workers and
leftovers of a killed run never collide. Teardown removes every container through the API, stops the
daemon, then checks the kernel for anything left under its roots (mounts, conmon processes) and, for
every container the daemon ever created (its `/events` are watched from start to stop), the cgroups,
bundle directory and runtime state; it fails the test that leaked after cleaning up by force. Every
daemon of the suite goes through this teardown, so together they check the whole suite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from node.client import EngineClient

VENV_BIN = Path(sys.executable).parent
PYNODE = str(VENV_BIN / "pynode")


class EngineProcess:
    def __init__(self, *, prefix: str = "pnt", extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.data_root = self.base / "root"
        self.exec_root = self.base / "run"
        self.sock = self.base / "pynode.sock"
        self.host = f"unix://{self.sock}"
        self.log_path = self.base / "daemon.log"
        # Each daemon gets its own nftables table (and so its own default bridge, `<table>0`): parallel
        # daemons never share or remove each other's rules and links.
        if "--nft-table" not in extra_args:
            extra_args = ("--nft-table", self.base.name, *extra_args)
        self.extra_args = extra_args
        self.env = {**os.environ, **(env or {}), "PYNODE_HOST": self.host}
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: EngineClient | None = None
        self.created: set[str] = set()  # ids of every container this daemon created, from its events
        self._watcher: threading.Thread | None = None

    # --- process control -----------------------------------------------------------------------
    def start(self, *, timeout: float = 20.0) -> None:
        started = time.time()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [PYNODE, "-H", self.host, "daemon", "--data-root", str(self.data_root),
             "--exec-root", str(self.exec_root), "--config-file", str(self.base / "daemon.json"),
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pynode daemon exited with {self.proc.returncode}:\n{self.log()}")
            if self.client.ping():
                self._watch_creates(since=started - 1)
                return
            time.sleep(0.05)
        raise RuntimeError(f"pynode daemon did not answer within {timeout}s:\n{self.log()}")

    def _watch_creates(self, *, since: float) -> None:
        """Record the id of each container the daemon creates, until its event stream ends (daemon stop)."""
        params = {"since": str(since), "filters": json.dumps({"type": ["container"], "event": ["create"]})}

        def watch() -> None:
            try:
                with EngineClient(self.host, timeout=None) as client, \
                        client.stream("GET", "/events", params=params) as resp:
                    for line in resp.iter_lines():
                        if line.strip():
                            self.created.add(json.loads(line)["id"])
            except Exception:  # noqa: BLE001 - the daemon went away (a kill); what was seen is kept
                pass

        self._watcher = threading.Thread(target=watch, name=f"events {self.base.name}", daemon=True)
        self._watcher.start()

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.join(10)
            self._watcher = None

    def stop(self, *, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        self._stop_watching()
        return code

    def kill(self) -> None:
        """SIGKILL the daemon: a crash. Containers under conmon must survive it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._stop_watching()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def client(self) -> EngineClient:
        if self._client is None:
            self._client = EngineClient(self.host, timeout=120)
        return self._client

    # --- the CLI --------------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, input: str | bytes | None = None,
            timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run `pynode ARGS` against this daemon; text in, text out."""
        result = subprocess.run(
            [PYNODE, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
            input=input if isinstance(input, str) or input is None else input.decode(), **kwargs,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pynode {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    # --- teardown -------------------------------------------------------------------------------
    def remove_all_containers(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            containers = self.client.get("/containers/json", params={"all": "1"})
        except Exception:  # noqa: BLE001 - a daemon without the containers API yet
            return
        for container in containers:
            try:
                self.client.delete(f"/containers/{container['Id']}", params={"force": "1", "v": "1"})
            except Exception:  # noqa: BLE001 - best effort before the forced sweep
                pass

    def leftovers(self) -> list[str]:
        """Kernel objects still tied to this daemon's roots: mounts and processes."""
        found = [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
                 if str(self.base) in line.split()[1]]
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.base) in cmdline and "pytest" not in cmdline:
                found.append(f"process {pid_dir.name}: {cmdline[:120]}")
        found += [f"cgroup {path}" for path in self._container_cgroups()]
        for cid in sorted(self.created):
            found += [f"bundle dir {p}" for p in [self.data_root / "containers" / cid] if p.exists()]
            found += [f"runtime state {p}" for p in (self.exec_root / "runtime").glob(f"*/{cid}")]
        return found

    def _container_cgroups(self) -> list[Path]:
        return [path for cid in sorted(self.created)
                for path in [*Path("/sys/fs/cgroup").glob(f"*/pynode/{cid}"), Path("/sys/fs/cgroup/pynode") / cid]
                if path.is_dir()]

    def force_clean(self) -> None:
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(self.base) in cmdline and "pytest" not in cmdline:
                try:
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if str(self.base) in line.split()[1]]
        for mount_point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        for cgroup in self._container_cgroups():
            for directory in [*sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)),
                              cgroup]:
                try:
                    directory.rmdir()
                except OSError:
                    pass

    def close(self) -> list[str]:
        """Full teardown; returns what had leaked (already cleaned by force)."""
        self.remove_all_containers()
        self.stop()
        if self._client is not None:
            self._client.close()
        leaked = self.leftovers()
        if leaked:
            self.force_clean()
        shutil.rmtree(self.base, ignore_errors=True)
        return leaked
