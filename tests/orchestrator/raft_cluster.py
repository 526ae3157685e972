"""A throwaway cluster of RaftProposer members on loopback, for tests and benchmarks."""

from __future__ import annotations

import socket
import time
from contextlib import closing
from pathlib import Path

from orchestrator.store.raft import RaftOptions, RaftProposer


def free_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def is_port_free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RaftCluster:
    """Members by index; `stop(i)` destroys one, `start(i)` reopens it on the same journal."""

    def __init__(self, root: Path, size: int = 3, *, options: RaftOptions | None = None) -> None:
        self.addrs = [f"127.0.0.1:{port}" for port in free_ports(size)]
        self.dirs = [root / f"m{i}" for i in range(size)]
        self.options = options
        self.members: list[RaftProposer | None] = [None] * size

    def start(self, index: int) -> RaftProposer:
        member = RaftProposer(self.addrs[index], self.addrs, self.dirs[index], options=self.options)
        self.members[index] = member
        return member

    def start_all(self) -> list[RaftProposer]:
        return [self.start(i) for i in range(len(self.addrs))]

    def stop(self, index: int) -> None:
        member = self.members[index]
        self.members[index] = None
        if member is not None:
            member.close()

    def close(self) -> None:
        for i in range(len(self.members)):
            self.stop(i)

    def running(self) -> list[RaftProposer]:
        return [m for m in self.members if m is not None]

    def leader_index(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, member in enumerate(self.members):
                if member is not None and member.is_leader and member.has_quorum():
                    return i
            time.sleep(0.005)
        raise TimeoutError("no leader")

    def wait_converged(self, *, at_least: int = 0, timeout: float = 15.0) -> list[str]:
        """Wait until every running member holds one revision (>= `at_least`); return their digests."""
        deadline = time.monotonic() + timeout
        at_least = max(at_least, *(m.machine.revision for m in self.running()))
        while True:
            revisions = {m.machine.revision for m in self.running()}
            if (len(revisions) == 1 and min(revisions) >= at_least) or time.monotonic() > deadline:
                return [m.machine.digest() for m in self.running()]
            time.sleep(0.02)
