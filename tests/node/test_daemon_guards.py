"""What keeps daemons apart and makes them stop promptly: one daemon per data root, exec root, nftables table
and socket (a second one is refused and leaves the first untouched); `pynode daemon -H` as dockerd's; SIGTERM
ends open `events`, `logs -f` and `wait` streams instead of waiting out the graceful timeout; daemon.json keys
take effect; `events --since --until` replays what happened."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.node.containers.conftest import ensure_busybox
from tests.support.engine import PYNODE, EngineProcess

pytestmark = pytest.mark.privileged


def _table(engine: EngineProcess) -> str:
    return engine.extra_args[engine.extra_args.index("--nft-table") + 1]


def _rules(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout


def _second_daemon(engine: EngineProcess, *, sock: Path, data_root: Path, exec_root: Path,
                   table: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYNODE, "daemon", "-H", f"unix://{sock}", "--data-root", str(data_root), "--exec-root", str(exec_root),
         "--nft-table", table, "--config-file", str(engine.base / "none.json")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("shared", ["exec root", "nft table", "socket"])
def test_a_second_daemon_sharing_runtime_state_is_refused(engine: EngineProcess, shared: str) -> None:
    other = engine.base / "other"
    table, pid_file = _table(engine), engine.exec_root / "pynode.pid"
    rules, pid = _rules(table), pid_file.read_text()
    result = _second_daemon(
        engine, sock=engine.sock if shared == "socket" else other / "s.sock", data_root=other / "root",
        exec_root=engine.exec_root if shared == "exec root" else other / "run",
        table=table if shared == "nft table" else f"{table[:10]}x")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: another pynode daemon")
    expected = {"exec root": f"exec root {engine.exec_root}", "nft table": f"nftables table inet {table}",
                "socket": f"listening on unix://{engine.sock}"}[shared]
    assert expected in result.stderr
    # the first daemon lost nothing: its socket answers, its pid file, rules and default bridge are there
    assert engine.client.ping()
    assert pid_file.read_text() == pid and _rules(table) == rules
    assert engine.cli("network", "inspect", "-f", "{{.Name}}", "bridge").stdout.strip() == "bridge"


def test_daemon_takes_h_after_the_command_as_dockerd_does(engine: EngineProcess) -> None:
    other = engine.base / "own"
    proc = subprocess.Popen(
        [PYNODE, "daemon", "-H", f"unix://{other}/s.sock", "--data-root", str(other / "root"), "--exec-root",
         str(other / "run"), "--nft-table", f"{_table(engine)[:10]}h", "--config-file", str(engine.base / "x.json")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (other / "s.sock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr and proc.stderr.read()
            time.sleep(0.05)
        info = subprocess.run([PYNODE, "-H", f"unix://{other}/s.sock", "info", "-f", "{{.DockerRootDir}}"],
                              capture_output=True, text=True, timeout=30)
        assert info.stdout.strip() == str(other / "root")
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_sigterm_ends_open_streams_promptly(engine: EngineProcess) -> None:
    ensure_busybox(engine)
    engine.cli("run", "-d", "--name", "sleeper", "busybox", "sleep", "300")
    followers = [subprocess.Popen([PYNODE, *args], env=engine.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
                 for args in (["events"], ["logs", "-f", "sleeper"], ["wait", "sleeper"])]
    try:
        time.sleep(1.5)  # all three connected and waiting
        assert engine.proc is not None
        t0 = time.monotonic()
        engine.proc.terminate()
        assert engine.proc.wait(30) == 0
        took = time.monotonic() - t0
        engine.proc = None
        assert took < 3, f"the daemon took {took:.1f}s to stop with streams open"
        assert "timeout graceful shutdown exceeded" not in engine.log()
        assert "Traceback" not in engine.log()
        codes = [f.wait(10) for f in followers]
        assert codes[:2] == [0, 0]
        wait_err = followers[2].stderr.read() if followers[2].stderr else ""
        assert codes[2] == 1 and wait_err.strip().endswith("the daemon closed the connection"), wait_err
    finally:
        for f in followers:
            if f.poll() is None:
                f.kill()
                f.wait()
        engine.start()
    assert engine.cli("inspect", "-f", "{{.State.Status}}", "sleeper").stdout.strip() == "running"
    engine.cli("rm", "-f", "sleeper")


def test_events_since_until_replays_and_ends(engine: EngineProcess) -> None:
    ensure_busybox(engine)
    engine.cli("run", "--rm", "--name", "evt", "busybox", "true")
    engine.cli("volume", "create", "evvol")
    engine.cli("volume", "rm", "evvol")
    time.sleep(1.1)
    t0 = time.monotonic()
    out = engine.cli("events", "--since", "1m", "--until", "0s", "--format", "{{.Type}} {{.Action}}",
                     timeout=20).stdout.splitlines()
    assert time.monotonic() - t0 < 10
    container = [line for line in out if line.startswith("container ")]
    assert container == ["container create", "container start", "container die", "container destroy"]
    assert out[-2:] == ["volume create", "volume destroy"]
    only = engine.cli("events", "--since", "1m", "--until", "0s", "-f", "event=die", "--format",
                      "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}", timeout=20).stdout
    assert only == "evt 0\n"
    default = engine.cli("events", "--since", "1m", "--until", "0s", "-f", "type=volume", timeout=20).stdout
    first = default.splitlines()[0]
    assert first.split()[1:4] == ["volume", "create", "evvol"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", first.split()[0])
    bad = engine.cli("events", "--since", "yesterday", check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and '"yesterday"' in bad.stderr


def test_daemon_json_keys_take_effect(tmp_path: Path) -> None:
    config = {"default-runtime": "runc", "bip": "10.196.7.1/24", "log-opts": {"max-size": "1k", "max-file": "2"},
              "default-address-pools": [{"base": "10.197.0.0/16", "size": 24}]}
    proc = EngineProcess(prefix="pnj")
    (proc.base / "daemon.json").write_text(json.dumps(config))
    proc.start()
    try:
        assert proc.cli("info", "-f", "{{.DefaultRuntime}}").stdout.strip() == "runc"
        bridge = json.loads(proc.cli("network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge").stdout)
        assert bridge == [{"Subnet": "10.196.7.0/24", "Gateway": "10.196.7.1"}]
        proc.cli("network", "create", "pooled")
        pooled = proc.cli("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "pooled").stdout.strip()
        assert pooled.startswith("10.197.") and pooled.endswith("/24")
        ensure_busybox(proc)
        proc.cli("run", "--name", "rt", "busybox", "sh", "-c", "i=0; while [ $i -lt 200 ]; do "
                 "echo line-$i-....................................; i=$((i+1)); done")
        assert proc.cli("inspect", "-f", "{{.HostConfig.Runtime}}", "rt").stdout.strip() == "runc"
        opts = json.loads(proc.cli("inspect", "-f", "{{json .HostConfig.LogConfig.Config}}", "rt").stdout)
        assert opts == {"max-size": "1k", "max-file": "2"}
        log_path = Path(proc.cli("inspect", "-f", "{{.LogPath}}", "rt").stdout.strip())
        assert {p.name for p in log_path.parent.glob(log_path.name + "*")} == {log_path.name, log_path.name + ".1"}
        assert log_path.stat().st_size <= 1024 and (log_path.parent / (log_path.name + ".1")).stat().st_size <= 1024
        assert proc.cli("logs", "--tail", "1", "rt").stdout.startswith("line-199-")
        proc.cli("rm", "rt")
        proc.cli("network", "rm", "pooled")
    finally:
        leaked = proc.close()
    assert not leaked, leaked
