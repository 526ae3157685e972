"""`pynode daemon`: one engine per data root, serving the API on a unix socket until SIGTERM."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
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


class RootLock:
    """An flock on `<root>/pynode.lock`: a second daemon on the same data root or exec root is refused.

    The exec root holds the pid file, the sandboxes and the runtime's state: two daemons on one exec root
    would remove each other's."""

    def __init__(self, root: Path, *, what: str) -> None:
        self.path = root / "pynode.lock"
        self.what = what
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
                f"another pynode daemon (pid {owner}) is already running on {self.what} {self.path.parent}"
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


class NftTableLock:
    """A claim on the engine's nftables table in this network namespace: an abstract unix socket named after
    the table (abstract names are per network namespace, as tables are, and vanish with the process).

    A second daemon on the same table would replace the first one's rules and remove its default bridge."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._sock: socket.socket | None = None

    def acquire(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\0pynode-nft-table-{self.table}")
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            raise Conflict(
                f"another pynode daemon in this network namespace already uses nftables table inet {self.table}"
                " (and its default bridge): give this one its own --nft-table"
            ) from None
        self._sock = sock

    def release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful exit, which would kill us before our cleanup runs; and it
    waits up to its graceful timeout for open responses, which `events`, `logs -f` and `wait` never end."""

    def __init__(self, config: uvicorn.Config, *, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)

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
    """Blocks until SIGTERM/SIGINT. Raises Conflict when the data root, exec root, nftables table or socket is
    another daemon's."""
    setup_logging(config.debug)
    locks = [RootLock(config.data_root, what="data root"), RootLock(config.exec_root, what="exec root"),
             NftTableLock(config.nft_table)]
    taken: list[RootLock | NftTableLock] = []
    socket_path = config.socket_path
    owned = False  # a refused daemon leaves the running one's socket and pid file alone
    try:
        for lock in locks:
            lock.acquire()
            taken.append(lock)
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        _refuse_live_socket(socket_path)
        owned = True
        _remove_stale(socket_path)
        write_bytes_atomic(config.pid_path, f"{os.getpid()}\n".encode())
        engine = Engine(config)
        app = create_app(engine)
        server = _Server(uvicorn.Config(
            app, uds=str(socket_path), log_level="debug" if config.debug else "warning",
            access_log=config.debug, timeout_graceful_shutdown=5, lifespan="on", http=HijackingH11Protocol,
        ), on_shutdown=engine.begin_shutdown)
        log.info("pynode daemon %s: data root %s, API on unix://%s", os.getpid(), config.data_root, socket_path)
        server.run()
        log.info("pynode daemon stopped")
    finally:
        if owned:
            _remove_stale(socket_path)
            _remove_stale(config.pid_path)
        for lock in reversed(taken):
            lock.release()


def _refuse_live_socket(path: Path) -> None:
    """A socket another daemon answers on is not stale: removing it would cut that daemon off its clients."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return
    raise Conflict(f"another pynode daemon is already listening on unix://{path}")


def _remove_stale(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
