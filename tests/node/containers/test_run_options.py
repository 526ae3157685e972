"""Issue 3's `run`/`create` options and commands not shown elsewhere, through the CLI against a real daemon:
what each flag changes inside the container, limits read back by `stats`, health reaching unhealthy with its
probe log, restart policies across a daemon restart, the API's multiplexed log stream, list filters, and bad
input that leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.runtime.spec import CAP_NUMBERS
from tests.node.containers.conftest import ensure_busybox
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.privileged
Unique = Callable[[str], str]


@pytest.fixture
def names(busybox_engine: EngineProcess, unique: Unique) -> Iterator[Callable[[str], str]]:
    """Unique container names, each removed (with its anonymous volumes) after the test, pass or fail."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    if made:
        busybox_engine.cli("rm", "-f", "-v", *made, check=False)


def _wait_for(predicate: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_process_options_reach_the_container(busybox_engine: EngineProcess, tmp_path: Path) -> None:
    e = busybox_engine
    env_file = tmp_path / "env"
    env_file.write_text("A=1\n# a comment\nB=two words\n\nC\n")
    out = e.cli("run", "--rm", "--env-file", str(env_file), "-e", "C=3", "-e", "A=override", "busybox", "sh", "-c",
                'echo "$A|$B|$C"').stdout
    assert out == "override|two words|3\n"
    out = e.cli("run", "--rm", "-w", "/var/spool", "-u", "65534:65534", "--hostname", "box1", "busybox", "sh", "-c",
                "pwd; id -u; id -g; hostname; cat /etc/hostname").stdout.split()
    assert out == ["/var/spool", "65534", "65534", "box1", "box1"]
    assert e.cli("run", "--rm", "-u", "nobody", "busybox", "id", "-un").stdout == "nobody\n"
    assert e.cli("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint").stdout == "from entrypoint\n"
    assert e.cli("run", "--rm", "--entrypoint", "", "busybox", "echo", "cleared").stdout == "cleared\n"


def test_capabilities_and_runtime(busybox_engine: EngineProcess) -> None:
    e = busybox_engine
    default = e.cli("run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    assert default == "00000000a80425fb"  # Docker's default set, exactly
    none = e.cli("run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status").stdout
    assert none.split()[1] == "0000000000000000"
    refused = e.cli("run", "--rm", "busybox", "ip", "link", "add", "x0", "type", "bridge", check=False)
    assert refused.returncode != 0
    assert e.cli("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "add", "x0", "type",
                 "bridge").returncode == 0
    no_chown = e.cli("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "nobody", "/tmp", check=False)
    assert no_chown.returncode != 0 and "Operation not permitted" in no_chown.stderr
    assert e.cli("run", "--rm", "--runtime", "runc", "busybox", "echo", "runc").stdout == "runc\n"
    bad = e.cli("run", "--rm", "--runtime", "nosuch", "busybox", "true", check=False)
    assert bad.returncode == 125 and bad.stderr.count("\n") == 1


def _host_bounding() -> str:
    return next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("CapBnd"))


def _cap_eff(e: EngineProcess, *flags: str) -> str:
    result = e.cli("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status", check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]


def test_privileged_runs_with_every_capability_the_host_has(busybox_engine: EngineProcess) -> None:
    result = busybox_engine.cli("run", "--rm", "--privileged", "busybox", "sh", "-c",
                                "grep CapEff /proc/self/status; ls /dev | wc -l", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == _host_bounding()


def test_all_capabilities_mean_those_the_host_has(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e, bounding = busybox_engine, int(_host_bounding(), 16)
    assert int(_cap_eff(e, "--cap-add", "ALL"), 16) == bounding
    assert int(_cap_eff(e, "--privileged", "--cap-drop", "ALL"), 16) == bounding  # Docker ignores the drop
    assert int(_cap_eff(e, "--cap-add", "ALL", "--cap-drop", "NET_RAW"), 16) == bounding & ~(1 << 13)
    name = names("privexec")
    e.cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    out = e.cli("exec", "--privileged", name, "grep", "CapEff", "/proc/self/status").stdout
    assert int(out.split()[1], 16) == bounding


def test_a_capability_the_host_lacks_is_refused_by_name(busybox_engine: EngineProcess) -> None:
    bounding = int(_host_bounding(), 16)
    missing = next((name for name, bit in CAP_NUMBERS.items() if not bounding >> bit & 1), None)
    if missing is None:
        pytest.skip("this host's bounding set has every capability")
    refused = busybox_engine.cli("run", "--rm", "--cap-add", missing.removeprefix("CAP_"), "busybox", "true",
                                 check=False)
    assert refused.returncode == 125 and refused.stderr.count("\n") == 1
    assert f'not available in the current environment: "{missing}"' in refused.stderr


def test_limits_are_set_and_read_back(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e, name = busybox_engine, names("limits")
    e.cli("run", "-d", "--name", name, "--memory", "48m", "--cpus", "0.5", "--pids-limit", "12", "busybox",
          "sleep", "100")
    host = e.cli("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
                 name).stdout.split()
    assert host == [str(48 << 20), "500000000", "12"]
    stats = json.loads(e.cli("stats", "--no-stream", "--format", "json", name).stdout)
    assert stats["MemUsage"].endswith("/ 48MiB") and stats["PIDs"] == "1"
    inside = e.cli("exec", name, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                   "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                   "/sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max "
                   "/sys/fs/cgroup/pids.max").stdout.split()
    assert inside == [str(48 << 20), "50000", "100000", "12"]  # v1 files, or v2's memory.max, cpu.max, pids.max
    forks = e.cli("exec", name, "sh", "-c", "for i in $(seq 20); do sleep 2 & done; wait", check=False)
    assert "can't fork" in forks.stderr  # the pids limit holds
    top = e.cli("top", name).stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top[1].split()[-2:] == ["sleep", "100"]


def test_stats_count_the_network_traffic_of_the_container(busybox_engine: EngineProcess,
                                                           names: Callable[[str], str]) -> None:
    e, pinger, isolated = busybox_engine, names("pinger"), names("isolated")
    cid = e.cli("run", "-d", "--name", pinger, "busybox", "sh", "-c",
                "ping -c 3 -i 0.2 $(ip route | awk '/default/ {print $3}'); sleep 100").stdout.strip()
    e.cli("run", "-d", "--name", isolated, "--network", "none", "busybox", "sleep", "100")
    assert _wait_for(lambda: e.client.get(f"/containers/{cid}/stats", params={"stream": "0"})["networks"]
                     .get("eth0", {}).get("tx_packets", 0) >= 3)
    eth0 = e.client.get(f"/containers/{cid}/stats", params={"stream": "0"})["networks"]["eth0"]
    assert eth0["rx_packets"] >= 3 and eth0["rx_bytes"] > 0 and eth0["tx_bytes"] > 0
    assert {"rx_errors", "rx_dropped", "tx_errors", "tx_dropped"} <= set(eth0)
    shown = json.loads(e.cli("stats", "--no-stream", "--format", "json", pinger).stdout)["NetIO"]
    assert re.fullmatch(r"[1-9][0-9.]*k?B / [1-9][0-9.]*k?B", shown), shown  # decimal units, as Docker's
    assert json.loads(e.cli("stats", "--no-stream", "--format", "json", isolated).stdout)["NetIO"] == "0B / 0B"


def test_stop_signal_and_timeout(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e = busybox_engine
    trap, slow = names("sigint"), names("slow")
    e.cli("run", "-d", "--name", trap, "--stop-signal", "SIGINT", "busybox", "sh", "-c",
          "trap 'echo got-int; exit 5' INT; echo ready; while true; do sleep 0.1; done")
    e.cli("run", "-d", "--name", slow, "--stop-timeout", "1", "busybox", "sleep", "100")
    assert _wait_for(lambda: "ready" in e.cli("logs", trap).stdout)
    assert e.cli("inspect", "-f", "{{.Config.StopSignal}}", trap).stdout.strip() == "SIGINT"
    assert e.cli("inspect", "-f", "{{.Config.StopTimeout}}", slow).stdout.strip() == "1"
    t0 = time.monotonic()
    e.cli("stop", trap, slow)
    assert time.monotonic() - t0 < 5  # TERM is ignored by `sleep` as pid 1: SIGKILL after 1 s, not 10
    assert e.cli("logs", trap).stdout.splitlines()[-1] == "got-int"
    assert e.cli("inspect", "-f", "{{.State.ExitCode}}", trap).stdout.strip() == "5"
    assert e.cli("inspect", "-f", "{{.State.ExitCode}}", slow).stdout.strip() == "137"


def test_kill_restart_wait_and_prune(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e = busybox_engine
    name, done = names("kill"), names("done")
    e.cli("run", "-d", "--name", name, "busybox", "sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    assert e.cli("kill", "-s", "USR1", name).stdout.strip() == name
    assert e.cli("wait", name).stdout == "7\n"
    e.cli("start", name)
    first = e.cli("inspect", "-f", "{{.State.StartedAt}}", name).stdout
    e.cli("restart", "-t", "0", name)
    assert e.cli("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name).stdout.split() == ["running", "0"]
    assert e.cli("inspect", "-f", "{{.State.StartedAt}}", name).stdout != first
    e.cli("kill", name)
    assert e.cli("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    refused = e.cli("kill", name, check=False)
    assert refused.returncode == 1 and "is not running" in refused.stderr
    e.cli("run", "--name", done, "busybox", "sh", "-c", "exit 2", check=False)
    assert e.cli("wait", done).stdout == "2\n"  # an exited container: at once, with its code


def test_exec_user_detach_and_env(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e, name = busybox_engine, names("exec")
    e.cli("run", "-d", "--name", name, "-e", "FROM_RUN=1", "busybox", "sleep", "100")
    assert e.cli("exec", "-u", "nobody", name, "id", "-un").stdout == "nobody\n"
    assert e.cli("exec", "-u", "1000:1000", name, "id").stdout.startswith("uid=1000 gid=1000")
    assert e.cli("exec", "-e", "X=2", name, "sh", "-c", "echo $FROM_RUN$X").stdout == "12\n"
    assert e.cli("exec", "-d", name, "sh", "-c", "sleep 0.3; echo detached > /tmp/d").stdout == ""
    assert _wait_for(lambda: e.cli("exec", name, "cat", "/tmp/d", check=False).stdout == "detached\n")
    stopped = names("stopped")
    e.cli("create", "--name", stopped, "busybox", "true")
    refused = e.cli("exec", stopped, "true", check=False)
    assert refused.returncode != 0 and "is not running" in refused.stderr


def test_health_goes_unhealthy_with_its_probe_log(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e, sick, slow, none = busybox_engine, names("sick"), names("slowprobe"), names("nohealth")
    e.cli("run", "-d", "--name", sick, "--health-cmd", "echo probing; exit 1", "--health-interval", "500ms",
          "--health-retries", "2", "busybox", "sleep", "100")
    e.cli("run", "-d", "--name", slow, "--health-cmd", "sleep 3", "--health-interval", "300ms", "--health-timeout",
          "200ms", "--health-retries", "1", "--health-start-period", "1s", "busybox", "sleep", "100")
    assert e.cli("inspect", "-f", "{{.State.Health.Status}}", sick).stdout.strip() == "starting"

    def status(n: str) -> str:
        return e.cli("inspect", "-f", "{{.State.Health.Status}}", n).stdout.strip()

    assert _wait_for(lambda: status(sick) == "unhealthy")
    health = json.loads(e.cli("inspect", "-f", "{{json .State.Health}}", sick).stdout)
    assert health["FailingStreak"] >= 2
    assert {(p["ExitCode"], p["Output"]) for p in health["Log"]} == {(1, "probing\n")}
    assert "(unhealthy)" in e.cli("ps", "--filter", f"name={sick}", "--format", "{{.Status}}").stdout
    assert _wait_for(lambda: status(slow) == "unhealthy")
    probe = json.loads(e.cli("inspect", "-f", "{{json .State.Health}}", slow).stdout)["Log"][-1]
    assert probe["ExitCode"] == -1 and "exceeded timeout" in probe["Output"]
    e.cli("run", "-d", "--name", none, "--no-healthcheck", "busybox", "sleep", "100")
    assert e.cli("inspect", "-f", "{{.State.Health}}", none).stdout.strip() == "<no value>"
    clash = e.cli("run", "--rm", "--no-healthcheck", "--health-cmd", "true", "busybox", "true", check=False)
    assert clash.returncode == 125 and "conflicts with --health-*" in clash.stderr


def test_mount_forms_and_volume_commands(busybox_engine: EngineProcess, names: Callable[[str], str],
                                         unique: Unique, tmp_path: Path) -> None:
    e, vol, anon = busybox_engine, unique("mvol"), names("anon")
    (tmp_path / "f").write_text("host\n")
    assert e.cli("volume", "create", "--label", "k=v", vol).stdout.strip() == vol
    try:
        e.cli("run", "--rm", "--mount", f"type=volume,source={vol},target=/data", "busybox", "sh", "-c",
              "echo kept > /data/f")
        ro = e.cli("run", "--rm", "--mount", f"source={vol},target=/data,readonly", "busybox", "sh", "-c",
                   "cat /data/f; touch /data/g", check=False)
        assert ro.stdout == "kept\n" and ro.returncode != 0 and "Read-only file system" in ro.stderr
        bind = e.cli("run", "--rm", "--mount", f"type=bind,source={tmp_path},target=/h,readonly", "busybox", "cat",
                     "/h/f")
        assert bind.stdout == "host\n"
        tmpfs = e.cli("run", "--rm", "--mount", "type=tmpfs,target=/t", "busybox", "sh", "-c", "mount | grep ' /t '")
        assert tmpfs.stdout.startswith("tmpfs on /t type tmpfs")
        info = json.loads(e.cli("volume", "inspect", vol).stdout)[0]
        assert (info["Name"], info["Driver"], info["Labels"]) == (vol, "local", {"k": "v"})
        assert (Path(info["Mountpoint"]) / "f").read_text() == "kept\n"
        assert vol in e.cli("volume", "ls", "-q").stdout.split()
        assert e.cli("volume", "ls", "-q", "--filter", "label=k=v").stdout.split() == [vol]
        e.cli("run", "-d", "--name", anon, "-v", "/scratch", "busybox", "true")
        anon_vol = json.loads(e.cli("inspect", "-f", "{{json .Mounts}}", anon).stdout)[0]["Name"]
        assert anon_vol in e.cli("volume", "ls", "-q").stdout.split()
        e.cli("rm", "-v", anon)
        assert anon_vol not in e.cli("volume", "ls", "-q").stdout.split()  # rm -v takes the anonymous one
        assert vol in e.cli("volume", "ls", "-q").stdout.split()  # and never a named one
        assert vol not in e.cli("volume", "prune", "-f").stdout  # prune without -a: anonymous ones only
        missing = e.cli("volume", "inspect", unique("nosuch"), check=False)
        assert missing.returncode == 1 and "no such volume" in missing.stderr
    finally:
        e.cli("volume", "rm", "-f", vol, check=False)


def test_logs_options_and_the_multiplexed_stream(busybox_engine: EngineProcess,
                                                 names: Callable[[str], str]) -> None:
    e, name = busybox_engine, names("logs")
    cid = e.cli("run", "-d", "--name", name, "busybox", "sh", "-c",
                "echo one; echo two >&2; sleep 3; echo three").stdout.strip()
    e.cli("wait", name)
    stamped = e.cli("logs", "-t", name).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "three"]
    assert all(line[:4].isdigit() and line.split(" ")[0].endswith("Z") for line in stamped)
    assert e.cli("logs", "--since", "2s", name).stdout == "three\n"
    assert e.cli("logs", "--until", "2s", name).stdout == "one\n"
    tail = e.cli("logs", "-n", "2", name)
    assert (tail.stdout, tail.stderr) == ("three\n", "two\n")
    with e.client.stream("GET", f"/containers/{cid}/logs", params={"stdout": "1", "stderr": "1"}) as resp:
        raw = b"".join(resp.iter_raw())
    frames = []
    while raw:
        stream, size = raw[0], int.from_bytes(raw[4:8], "big")
        frames.append((stream, raw[8:8 + size]))
        raw = raw[8 + size:]
    assert frames == [(1, b"one\n"), (2, b"two\n"), (1, b"three\n")]


def test_list_filters(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e = busybox_engine
    up, failed = names("up"), names("failed")
    up_id = e.cli("run", "-d", "--name", up, "-l", "role=web", "busybox", "sleep", "100").stdout.strip()
    e.cli("run", "--name", failed, "-l", "role=job", "busybox", "sh", "-c", "exit 4", check=False)

    def listed(*filters: str) -> set[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return set(e.cli("ps", "-a", "--format", "{{.Names}}", *args).stdout.split()) & {up, failed}

    assert listed("label=role=web") == {up}
    assert listed("label=role") == {up, failed}
    assert listed("status=exited") == {failed}
    assert listed("exited=4") == {failed}
    assert listed("ancestor=busybox", "status=running") == {up}
    assert listed(f"id={up_id[:12]}") == {up}
    assert listed(f"name={failed}") == {failed}
    for bad, message in (("bogus=1", "invalid filter 'bogus'"), ("isolation=default", "not supported")):
        refused = e.cli("ps", "--filter", bad, check=False)
        assert refused.returncode == 1 and message in refused.stderr and refused.stderr.count("\n") == 1


def test_system_df_and_container_prune(engine: EngineProcess) -> None:
    ensure_busybox(engine)
    engine.cli("run", "-d", "--name", "busy", "-v", "dfvol:/d", "busybox", "sh", "-c",
               "head -c 3000 /dev/zero > /d/f; head -c 2000 /dev/zero > /written; sleep 100")
    engine.cli("run", "--name", "gone", "busybox", "true")
    assert _wait_for(lambda: engine.cli("exec", "busy", "ls", "/written", check=False).returncode == 0)
    rows = {line.split()[0]: line.split() for line in engine.cli("system", "df").stdout.splitlines()[1:]}
    assert rows["Containers"][1:4] == ["2", "1", "2kB"]
    assert rows["Local"][2:5] == ["1", "1", "3kB"]  # "Local Volumes": one, in use, 3 kB
    verbose = engine.cli("system", "df", "-v").stdout
    assert "busy" in verbose and "gone" in verbose and "dfvol" in verbose
    gone_id = engine.cli("inspect", "-f", "{{.Id}}", "gone").stdout.strip()
    pruned = engine.cli("container", "prune", "-f").stdout
    assert pruned.splitlines()[:2] == ["Deleted Containers:", gone_id] and "Total reclaimed space:" in pruned
    assert engine.cli("ps", "-a", "--format", "{{.Names}}").stdout == "busy\n"
    engine.cli("rm", "-f", "busy")
    engine.cli("volume", "rm", "dfvol")


def test_restart_policies_bring_containers_back_when_the_daemon_starts(engine: EngineProcess) -> None:
    """As after a reboot: the daemon is down while its containers die; on start it restarts `always` and
    `unless-stopped` ones (not one stopped by hand) and leaves the others exited."""
    ensure_busybox(engine)
    for name, policy in (("al", "always"), ("us", "unless-stopped"), ("usstopped", "unless-stopped"),
                         ("plain", "no")):
        engine.cli("run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "300")
    engine.cli("stop", "-t", "0", "usstopped")
    pids = [int(engine.cli("inspect", "-f", "{{.State.Pid}}", n).stdout) for n in ("al", "us", "plain")]
    engine.stop()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    engine.start()

    def states() -> dict[str, str]:
        out = engine.cli("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
        return dict(line.split() for line in out if line)

    assert _wait_for(lambda: states()["al"] == states()["us"] == "running")
    time.sleep(1)
    assert states() == {"al": "running", "us": "running", "usstopped": "exited", "plain": "exited"}
    assert engine.cli("inspect", "-f", "{{.State.ExitCode}}", "plain").stdout.strip() == "137"
    engine.cli("rm", "-f", "al", "us", "usstopped", "plain")


@pytest.mark.parametrize("bad", [
    ["nosuchimage:latest", "true"],
    ["-v", "a:b:c:d", "busybox", "true"],
    ["--mount", "type=bogus,target=/x", "busybox", "true"],
    ["--memory", "12zz", "busybox", "true"],
    ["--cap-drop", "NOT_A_CAP", "busybox", "true"],
    ["-v", "/no/such/source/dir:/x", "busybox", "true"],
    ["--restart", "sometimes", "busybox", "true"],
    ["--health-interval", "soon", "busybox", "true"],
    ["--network", "nosuchnet", "busybox", "true"],
])
def test_bad_create_input_leaves_no_bundle_mount_process_or_log(busybox_engine: EngineProcess,
                                                              bad: list[str]) -> None:
    e = busybox_engine
    before = (sorted((e.data_root / "containers").iterdir()), _mounts_under(e.data_root), _conmons(e))
    for command in ("create", "run"):
        result = e.cli(command, *bad, check=False)
        assert result.returncode == 125, (command, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert (sorted((e.data_root / "containers").iterdir()), _mounts_under(e.data_root), _conmons(e)) == before


def _mounts_under(root: Path) -> list[str]:
    return sorted(line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(root)))


def _conmons(e: EngineProcess) -> set[str]:
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"conmon") and str(e.base).encode() in cmdline:
            found.add(proc.name)
    return found


def test_image_healthcheck_and_stop_signal_apply(busybox_engine: EngineProcess, names: Callable[[str], str],
                                                 unique: Unique, tmp_path: Path) -> None:
    e, tag, name = busybox_engine, unique("imgcfg"), names("imgcfg")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "HEALTHCHECK --interval=300ms --retries=2 CMD test -e /tmp/ready\n"
        "STOPSIGNAL SIGUSR1\n"
        "CMD trap 'echo got-usr1; exit 3' USR1; touch /tmp/ready; while true; do sleep 0.1; done\n")
    e.cli("build", "-q", "-t", tag, str(tmp_path))
    try:
        e.cli("run", "-d", "--name", name, tag)
        assert _wait_for(lambda: e.cli("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip() == "healthy")
        t0 = time.monotonic()
        e.cli("stop", name)
        assert time.monotonic() - t0 < 5  # the image's stop signal, handled: no 10 s wait for SIGKILL
        assert e.cli("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "3"
        assert e.cli("logs", name).stdout.strip() == "got-usr1"
    finally:
        e.cli("rm", "-f", name, check=False)
        e.cli("rmi", tag, check=False)
