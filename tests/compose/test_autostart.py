"""A fresh install: no daemon answers on the default socket, so `pycompose` starts `pynode daemon` and says so.

The default socket, data root and log are the machine's own, so the test runs in private mount and network
namespaces (`unshare`) with tmpfs and throwaway directories over /run/pynode, /var/lib/pynode and /var/log:
the machine's own daemon, if any, is neither seen nor touched. Whatever the daemon started is killed by its
mount namespace afterwards, even when the test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

VENV_BIN = Path(sys.executable).parent

SCRIPT = """\
set -e
mount -t tmpfs tmpfs /run/pynode
mount --bind "$T/lib" /var/lib/pynode
mount --bind "$T/log" /var/log
pycompose --progress plain ps
cp /run/pynode/pynode.pid "$T/daemon.pid"
pynode image bootstrap busybox > /dev/null
pycompose --progress plain up -d
pycompose ps --services > "$T/services"
pycompose --progress plain down -t 0
pycompose --progress plain ps
"""


def _stop_namespace(pid_file: Path) -> None:
    """SIGTERM the daemon, then SIGKILL every process left in its mount namespace (never ours: the test
    runs outside it)."""
    try:
        pid = int(pid_file.read_text())
        namespace = os.readlink(f"/proc/{pid}/ns/mnt")
    except (OSError, ValueError):
        return
    if namespace == os.readlink("/proc/self/ns/mnt"):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "mnt") == namespace:
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            continue


def test_pycompose_starts_a_local_daemon_when_none_answers(tmp_path: Path) -> None:
    for sub in ("lib", "log"):
        (tmp_path / sub).mkdir()
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "compose.yaml").write_text("services:\n  web: {image: busybox, command: sleep 1000}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYNODE_HOST"}
    env.update(T=str(tmp_path), PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}")
    pid_file = tmp_path / "daemon.pid"
    try:
        result = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", SCRIPT],
                                cwd=tmp_path / "proj", env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        said = "no pynode daemon answers on unix:///run/pynode/pynode.sock; starting `pynode daemon`"
        assert result.stderr.count(said) == 1, result.stderr  # once: later commands find the daemon it started
        assert (tmp_path / "services").read_text() == "web\n"
        assert "pynode daemon" in (tmp_path / "log" / "pynode.log").read_text()
    finally:
        _stop_namespace(pid_file)
    assert not any(str(tmp_path) in line for line in Path("/proc/mounts").read_text().splitlines())
