"""The daemon as a user meets it: its socket, its identity routes, one per data root, a clean SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import pytest

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
