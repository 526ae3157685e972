"""The daemon as a user meets it: its socket, its identity routes, one per data root, a clean SIGTERM (which
stops the containers only with live-restore off)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.node.containers.conftest import ensure_busybox
from tests.support.engine import PYNODE, EngineProcess

pytestmark = pytest.mark.privileged


def test_ping_version_info_versioned_and_not(engine: EngineProcess) -> None:
    transport = httpx.HTTPTransport(uds=str(engine.sock))
    with httpx.Client(transport=transport, base_url="http://pynode") as http:
        for prefix in ("", "/v1.43", "/v1.41"):
            ping = http.get(f"{prefix}/_ping")
            assert ping.status_code == 200 and ping.text == "OK"
            assert ping.headers["API-Version"] == "1.43"
            assert http.get(f"{prefix}/version").json()["ApiVersion"] == "1.43"
        info = http.get("/info").json()
        assert info["Driver"] == "overlay2"
        assert info["DockerRootDir"] == str(engine.data_root)
        assert info["CgroupVersion"] in ("1", "2")
        missing = http.get("/v1.43/no/such/route")
        assert missing.status_code == 404


def test_cli_version_and_info(engine: EngineProcess) -> None:
    out = engine.cli("info").stdout
    assert "Storage Driver: overlay2" in out
    assert f"Docker Root Dir: {engine.data_root}" in out
    assert "Images: 0" in out and "Containers: 0" in out
    assert engine.cli("info", "--format", "{{.Driver}}").stdout.strip() == "overlay2"
    assert json.loads(engine.cli("version", "--format", "json").stdout)["Server"]["ApiVersion"] == "1.43"


def test_pid_file_written_and_removed_on_sigterm(engine: EngineProcess) -> None:
    pid_file = engine.exec_root / "pynode.pid"
    assert engine.proc is not None
    assert pid_file.read_text().strip() == str(engine.proc.pid)
    engine.proc.send_signal(signal.SIGTERM)
    assert engine.proc.wait(15) == 0
    engine.proc = None
    assert not pid_file.exists()
    assert not engine.sock.exists()
    assert "pynode daemon stopped" in engine.log()
    engine.start()  # the fixture's teardown expects a running daemon


def test_second_daemon_on_same_data_root_is_refused(engine: EngineProcess) -> None:
    other = engine.base / "other.sock"
    result = subprocess.run(
        [PYNODE, "-H", f"unix://{other}", "daemon", "--data-root", str(engine.data_root),
         "--exec-root", str(engine.base / "run2")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "already running on data root" in result.stderr
    assert str(engine.data_root) in result.stderr
    assert engine.client.ping()  # the first daemon is untouched


def test_client_without_daemon_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([PYNODE, "-H", f"unix://{tmp_path}/none.sock", "info"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Cannot connect to the pynode daemon" in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_daemon_json_is_one_clear_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "daemon.json"
    config.write_text('{"data-root": "/x", "no-such-key": 1}')
    result = subprocess.run(
        [PYNODE, "-H", f"unix://{tmp_path}/s.sock", "daemon", "--config-file", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert "no-such-key" in result.stderr and str(config) in result.stderr


def _is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("live_restore", [False, True])
def test_live_restore_decides_whether_sigterm_stops_the_containers(live_restore: bool) -> None:
    """dockerd's rule: with live-restore off, stopping the daemon stops its containers (restart policies
    bring them back when it starts again); with it on, they keep running and the next daemon adopts them."""
    proc = EngineProcess(prefix="pnl")
    (proc.base / "daemon.json").write_text(json.dumps({"live-restore": live_restore}))
    proc.start()
    try:
        ensure_busybox(proc)
        assert proc.client.get("/info")["LiveRestoreEnabled"] is live_restore
        for name, policy in (("back", "always"), ("plain", "no")):
            proc.cli("run", "-d", "--init", "--name", name, "--restart", policy, "busybox", "sleep", "300")
        pids = {n: int(proc.cli("inspect", "-f", "{{.State.Pid}}", n).stdout) for n in ("back", "plain")}
        assert proc.stop() == 0  # SIGTERM
        assert {n: _is_running(pid) for n, pid in pids.items()} == {"back": live_restore, "plain": live_restore}
        proc.start()
        shown = proc.cli("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
        states = dict(line.split() for line in shown if line)
        code = proc.cli("inspect", "-f", "{{.State.ExitCode}}", "plain").stdout.strip()
        back_pid = int(proc.cli("inspect", "-f", "{{.State.Pid}}", "back").stdout)
        if live_restore:
            assert states == {"back": "running", "plain": "running"}
            assert back_pid == pids["back"]
        else:
            assert states == {"back": "running", "plain": "exited"} and code == "143"  # stopped by SIGTERM
            assert back_pid != pids["back"]
    finally:
        leaked = proc.close()
    assert not leaked, f"test leaked kernel objects: {leaked}"
