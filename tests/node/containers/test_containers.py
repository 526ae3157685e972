"""Issue 3's acceptance points, through the CLI against a real daemon."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.node.containers.conftest import ensure_busybox
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged
Unique = Callable[[str], str]


def _status(e: EngineProcess, name: str) -> str:
    return e.cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_run_rm_prints_and_leaves_nothing(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("hello")
    result = busybox_engine.cli("run", "--rm", "--name", name, "busybox", "echo", "hello")
    assert result.stdout == "hello\n"
    assert busybox_engine.cli("inspect", name, check=False).returncode == 1
    assert not list((busybox_engine.data_root / "containers").glob("*")) or all(
        name not in p.read_text() for p in (busybox_engine.data_root / "containers").glob("*/config.v2.json"))


def test_exit_codes(busybox_engine: EngineProcess) -> None:
    assert busybox_engine.cli("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    assert busybox_engine.cli("run", "--rm", "busybox", "nosuchcommand", check=False).returncode == 127
    assert busybox_engine.cli("run", "--rm", "busybox", "/etc/passwd", check=False).returncode == 126


def test_stdout_and_stderr_kept_apart(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("streams")
    result = busybox_engine.cli("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    logs = busybox_engine.cli("logs", name)
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    assert busybox_engine.cli("logs", "--tail", "1", name).stderr == "err\n"
    busybox_engine.cli("rm", name)


@pytest.mark.parametrize("bad", [
    ["nosuchimage:latest", "true"],
    ["-v", "a:b:c:d", "busybox", "true"],
    ["--memory", "lots", "busybox", "true"],
    ["--cap-add", "NOT_A_CAP", "busybox", "true"],
    ["-v", "/no/such/source/dir:/x", "busybox", "true"],
    ["--mount", "type=bind,target=/x", "busybox", "true"],
])
def test_bad_input_is_125_and_leaves_nothing(busybox_engine: EngineProcess, bad: list[str]) -> None:
    before = set((busybox_engine.data_root / "containers").iterdir())
    result = busybox_engine.cli("run", "--rm", *bad, check=False)
    assert result.returncode == 125, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert set((busybox_engine.data_root / "containers").iterdir()) == before


def test_name_in_use_is_refused(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("dup")
    busybox_engine.cli("create", "--name", name, "busybox", "true")
    result = busybox_engine.cli("run", "--name", name, "busybox", "true", check=False)
    assert result.returncode == 125 and "already in use" in result.stderr
    busybox_engine.cli("rm", name)


def test_stop_timing(busybox_engine: EngineProcess, unique: Unique) -> None:
    plain, trap = unique("sleep"), unique("trap")
    busybox_engine.cli("run", "-d", "--name", plain, "busybox", "sleep", "100")
    busybox_engine.cli("run", "-d", "--name", trap, "busybox", "sh", "-c",
                       "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    time.sleep(0.3)
    t0 = time.monotonic()
    busybox_engine.cli("stop", "-t", "2", plain)
    assert 1.8 < time.monotonic() - t0 < 6
    assert busybox_engine.cli("inspect", "-f", "{{.State.ExitCode}}", plain).stdout.strip() == "137"
    t0 = time.monotonic()
    busybox_engine.cli("stop", trap)
    assert time.monotonic() - t0 < 3
    assert _status(busybox_engine, trap) == "exited"
    busybox_engine.cli("rm", plain, trap)


def test_init_makes_sleep_stop_on_term(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("init")
    busybox_engine.cli("run", "-d", "--init", "--name", name, "busybox", "sleep", "100")
    time.sleep(0.3)
    t0 = time.monotonic()
    busybox_engine.cli("stop", name)
    assert time.monotonic() - t0 < 3
    busybox_engine.cli("rm", name)


def test_on_failure_restarts_exactly_twice(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("onfail")
    busybox_engine.cli("run", "-d", "--restart", "on-failure:2", "--name", name, "busybox", "sh", "-c", "exit 1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = busybox_engine.cli("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name).stdout.split()
        if out == ["exited", "2"]:
            break
        time.sleep(0.2)
    time.sleep(1)
    assert busybox_engine.cli("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name).stdout.split() == \
        ["exited", "2"]
    busybox_engine.cli("rm", name)


def test_memory_limit_oom(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("oom")
    result = busybox_engine.cli("run", "--name", name, "--memory", "32m", "busybox", "sh", "-c",
                                "x=a; while true; do x=\"$x$x\"; done", check=False)
    assert result.returncode == 137
    assert busybox_engine.cli("inspect", "-f", "{{.State.OOMKilled}}", name).stdout.strip() == "true"
    busybox_engine.cli("rm", name)


def test_healthcheck_reaches_healthy(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("health")
    busybox_engine.cli("run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "500ms",
                       "busybox", "sleep", "100")
    deadline = time.monotonic() + 15
    status = ""
    while time.monotonic() < deadline and status != "healthy":
        status = busybox_engine.cli("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
        time.sleep(0.2)
    assert status == "healthy"
    assert "(healthy)" in busybox_engine.cli("ps", "--filter", f"name={name}").stdout
    busybox_engine.cli("rm", "-f", name)


def test_named_volume_outlives_container(busybox_engine: EngineProcess, unique: Unique) -> None:
    vol, user = unique("vol"), unique("user")
    busybox_engine.cli("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    busybox_engine.cli("run", "-d", "--name", user, "-v", f"{vol}:/data", "busybox", "sleep", "100")
    assert busybox_engine.cli("exec", user, "cat", "/data/f").stdout == "kept\n"
    refused = busybox_engine.cli("volume", "rm", vol, check=False)
    assert refused.returncode == 1 and "in use" in refused.stderr
    busybox_engine.cli("rm", "-f", user)
    busybox_engine.cli("volume", "rm", vol)


def test_new_volume_is_filled_from_image(busybox_engine: EngineProcess, unique: Unique) -> None:
    vol = unique("etc")
    out = busybox_engine.cli("run", "--rm", "-v", f"{vol}:/bin", "busybox", "ls", "/bin/sh").stdout
    assert out.strip() == "/bin/sh"
    busybox_engine.cli("volume", "rm", vol)


def test_bind_ro_tmpfs_readonly(busybox_engine: EngineProcess, unique: Unique, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("host\n")
    e = busybox_engine
    assert e.cli("run", "--rm", "-v", f"{tmp_path}:/h:ro", "busybox", "cat", "/h/in").stdout == "host\n"
    assert e.cli("run", "--rm", "-v", f"{tmp_path}:/h:ro", "busybox", "touch", "/h/x", check=False).returncode != 0
    assert e.cli("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
                 "touch /scratch/ok && ! touch /nope").returncode == 0


def test_ps_inspect_formats(busybox_engine: EngineProcess, unique: Unique) -> None:
    name = unique("fmt")
    cid = busybox_engine.cli("run", "-d", "--name", name, "-l", "k=v", "busybox", "sleep", "100").stdout.strip()
    table = busybox_engine.cli("ps", "--filter", f"name={name}").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert "Up " in table[1] and name in table[1]
    custom = busybox_engine.cli("ps", "--filter", f"name={name}", "--format", "table {{.ID}}\t{{.Names}}").stdout
    assert custom.splitlines()[1].split() == [cid[:12], name]
    assert busybox_engine.cli("inspect", "-f", "{{json .Config.Labels}}", name).stdout.strip() == '{"k":"v"}'
    assert busybox_engine.cli("exec", "-e", "X=1", "-w", "/tmp", name, "sh", "-c", "echo $X $PWD").stdout == \
        "1 /tmp\n"
    busybox_engine.cli("pause", name)
    assert _status(busybox_engine, name) == "paused"
    busybox_engine.cli("unpause", name)
    stats = busybox_engine.cli("stats", "--no-stream", name).stdout
    assert cid[:12] in stats
    busybox_engine.cli("rm", "-f", name)


def test_daemon_sigkill_and_live_restore(engine: EngineProcess, unique: Unique) -> None:
    ensure_busybox(engine)
    name, gone = unique("survivor"), unique("gone")
    engine.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    engine.cli("run", "-d", "--name", gone, "busybox", "sleep", "2")
    before = engine.cli("ps", "-a", "--format", "{{.ID}} {{.Names}}").stdout
    engine.kill()
    time.sleep(2.5)
    engine.start()
    assert engine.cli("ps", "-a", "--format", "{{.ID}} {{.Names}}").stdout == before
    assert _status(engine, name) == "running"
    assert _status(engine, gone) == "exited"
    assert engine.cli("exec", name, "echo", "back").stdout == "back\n"
    engine.cli("stop", "-t", "1", name)
    assert _status(engine, name) == "exited"


def test_nothing_left_behind(engine: EngineProcess, unique: Unique) -> None:
    ensure_busybox(engine)
    names = [unique("leak") for _ in range(3)]
    engine.cli("run", "-d", "--name", names[0], "busybox", "sleep", "100")
    engine.cli("run", "--name", names[1], "busybox", "true")
    engine.cli("run", "--rm", "--name", names[2], "busybox", "true")
    ids = [engine.cli("inspect", "-f", "{{.Id}}", n).stdout.strip() for n in names[:2]]
    engine.cli("rm", "-f", *names[:2])
    assert not list((engine.data_root / "containers").iterdir())
    mounts = Path("/proc/mounts").read_text()
    assert str(engine.data_root) not in mounts
    for cid in ids:
        assert not list(Path("/sys/fs/cgroup").glob(f"*/pynode/{cid}"))
        assert cid not in _all_cmdlines()


def _all_cmdlines() -> str:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                out.append((p / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                pass
    return "\n".join(out)
