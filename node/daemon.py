"""`pynode daemon`: one engine per data root, serving the API on a unix socket until SIGTERM."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import uvicorn

from node.api.app import create_app
from node.api.hijack import HijackingH11Protocol
from node.config import DaemonConfig
from node.engine import Engine
from node.errors import Conflict
from node.fsutil import write_bytes_atomic

log = logging.getLogger("pynode")


class DataRootLock:
    """An flock on `<data-root>/pynode.lock`: a second daemon on the same data root is refused."""

    def __init__(self, data_root: Path) -> None:
        self.path = data_root / "pynode.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise Conflict(
                f"another pynode daemon (pid {owner}) is already running on data root {self.path.parent}"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful exit, which would kill us before our cleanup runs."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_daemon(config: DaemonConfig) -> None:
    """Blocks until SIGTERM/SIGINT. Raises Conflict when the data root is taken."""
    setup_logging(config.debug)
    lock = DataRootLock(config.data_root)
    lock.acquire()
    socket_path = config.socket_path
    try:
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(socket_path)
        write_bytes_atomic(config.pid_path, f"{os.getpid()}\n".encode())
        engine = Engine(config)
        app = create_app(engine)
        server = _Server(uvicorn.Config(
            app, uds=str(socket_path), log_level="debug" if config.debug else "warning",
            access_log=config.debug, timeout_graceful_shutdown=5, lifespan="on", http=HijackingH11Protocol,
        ))
        log.info("pynode daemon %s: data root %s, API on unix://%s", os.getpid(), config.data_root, socket_path)
        server.run()
        log.info("pynode daemon stopped")
    finally:
        _remove_stale(socket_path)
        _remove_stale(config.pid_path)
        lock.release()


def _remove_stale(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
