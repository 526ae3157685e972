"""Lab hosts as tests and users meet them: `pyswarm lab` and the `Lab` API on the real kernel."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.lab import Lab, LabError
from tests.support.lab import LabSpot

pytestmark = [pytest.mark.privileged, pytest.mark.lab]

PYTHON = sys.executable


def _pings(lab: Lab, src: str, dst: str) -> bool:
    return lab.exec(src, "ping", "-c", "1", "-W", "1", lab.host(dst).address).returncode == 0


def _wait_pings(lab: Lab, src: str, dst: str, *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pings(lab, src, dst):
            return True
    return False


def test_ls_lists_every_host_with_address_and_socket(lab_spot: LabSpot) -> None:
    up = lab_spot.cli("up", "3", "--subnet", lab_spot.subnet)
    assert up.returncode == 0, up.stderr
    assert all(f"h{i}: engine ready" in up.stderr for i in (1, 2, 3))
    lines = lab_spot.cli("ls").stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "ADDRESS", "SOCKET"]
    assert [line.split()[0] for line in lines[1:]] == ["h1", "h2", "h3"]
    prefix = lab_spot.subnet.rsplit(".", 1)[0]
    for i, line in enumerate(lines[1:], start=1):
        host, address, sock, *_ = line.split()
        assert address == f"{prefix}.{i + 1}/24"
        assert sock == f"/run/pynode-{lab_spot.name}-{host}.sock" and line.endswith("running")


def test_exec_acts_on_that_hosts_engine(lab3: Lab, lab_spot: LabSpot) -> None:
    result = lab_spot.cli("exec", "h2", "--", "pynode", "info")
    assert result.returncode == 0, result.stderr
    assert f"Docker Root Dir: {lab3.host('h2').data_root}" in result.stdout
    assert "Name: h2" in result.stdout
    assert lab_spot.cli("exec", "h3", "--", "sh", "-c", "exit 7").returncode == 7
    assert lab3.exec("h1", "hostname").stdout.strip() == "h1"
    assert lab3.exec("h1", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert lab3.exec("h3", "sh", "-c", "echo $PYNODE_HOST").stdout.strip() == lab3.host("h3").url


def test_hosts_reach_each_other_across_the_bridge(lab3: Lab) -> None:
    routes = lab3.exec("h1", "ip", "-o", "addr", "show", "eth0").stdout
    assert f"{lab3.host('h1').address}/24" in routes
    for src, dst in (("h1", "h2"), ("h2", "h3"), ("h3", "h1")):
        assert _wait_pings(lab3, src, dst), f"{src} cannot ping {dst}"


def test_kill_stops_the_engine_and_start_brings_it_back_on_the_same_data_root(lab3: Lab,
                                                                             lab_spot: LabSpot) -> None:
    marker = lab3.host("h2").data_root / "marker"
    marker.write_text("still here")
    assert lab_spot.cli("kill", "h2").returncode == 0
    with lab3.client("h2") as client:
        assert not client.ping()
    assert "stopped" in [line for line in lab_spot.cli("ls").stdout.splitlines() if line.startswith("h2")][0]
    assert lab_spot.cli("exec", "h2", "--", "pynode", "info").returncode != 0
    with lab3.client("h1") as client:
        assert client.ping()
    assert lab_spot.cli("start", "h2").returncode == 0
    reopened = Lab.open(name=lab_spot.name, state_dir=lab_spot.state_root)
    with reopened.client("h2") as client:
        assert client.ping()
        assert client.get("/info")["DockerRootDir"] == str(marker.parent)
    assert marker.read_text() == "still here"
    with pytest.raises(LabError, match="already running"):
        reopened.start("h2")


def test_cut_partitions_a_host_and_heal_restores_it(lab3: Lab, lab_spot: LabSpot) -> None:
    assert _wait_pings(lab3, "h1", "h2")
    server = _tcp_server(lab3, "h2", port=7777)
    try:
        assert _connects(lab3, "h1", "h2", port=7777)
        assert lab_spot.cli("cut", "h2").returncode == 0
        assert not _pings(lab3, "h1", "h2") and not _pings(lab3, "h2", "h3")
        assert not _connects(lab3, "h1", "h2", port=7777)
        assert _pings(lab3, "h1", "h3")
        assert "cut" in [line for line in lab_spot.cli("ls").stdout.splitlines() if line.startswith("h2")][0]
        assert lab_spot.cli("heal", "h2").returncode == 0
        assert _wait_pings(lab3, "h1", "h2")
        assert _connects(lab3, "h1", "h2", port=7777)
    finally:
        server.kill()
        server.wait()


def _tcp_server(lab: Lab, host: str, *, port: int) -> subprocess.Popen[bytes]:
    code = (f"import socket; s = socket.create_server(('', {port})); s.settimeout(60)\n"
            "while True: c, _ = s.accept(); c.close()")
    argv, env = lab.exec_argv(host, PYTHON, "-c", code)
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _connects(lab, host, host, port=port):
        time.sleep(0.05)
    return server


def _connects(lab: Lab, src: str, dst: str, *, port: int) -> bool:
    code = f"import socket; socket.create_connection(('{lab.host(dst).address}', {port}), timeout=2).close()"
    return lab.exec(src, PYTHON, "-c", code).returncode == 0


def test_down_leaves_nothing_behind(lab3: Lab, lab_spot: LabSpot) -> None:
    lab3.exec("h1", "sh", "-c", "setsid sleep 600 >/dev/null 2>&1 &")  # something else running inside h1
    assert lab_spot.cli("down").returncode == 0
    assert lab_spot.leftovers() == []
    assert lab_spot.cli("down").returncode == 0  # idempotent
    assert "no lab" in lab_spot.cli("ls").stderr


def test_down_removes_containers_whose_engine_was_killed(lab3: Lab, lab_spot: LabSpot) -> None:
    """Containers outlive a killed engine (live restore): `down` still finds them, by their sandboxes and
    cgroups, and leaves none of their processes or cgroups."""
    assert lab3.exec("h2", "pynode", "image", "bootstrap", "busybox").returncode == 0
    for network in ("bridge", "none"):
        run = lab3.exec("h2", "pynode", "run", "-d", "--init", "--network", network, "busybox", "sleep", "600")
        assert run.returncode == 0, run.stderr
    containers = lab_spot.container_ids()
    assert len(containers) == 2
    pids = [int(p) for cid in containers for p in Path(f"/sys/fs/cgroup/pids/pynode/{cid}/cgroup.procs")
            .read_text().split()] if Path("/sys/fs/cgroup/pids/pynode").is_dir() else []
    lab3.kill("h2")
    assert lab_spot.cli("down").returncode == 0
    assert lab_spot.leftovers(containers) == []
    def alive(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return ""

    assert not [alive(pid) for pid in pids if alive(pid) and alive(pid).rsplit(")", 1)[1].split()[0] != "Z"]


def test_down_after_a_crash_without_state_file_sweeps_by_name(lab3: Lab, lab_spot: LabSpot) -> None:
    lab3.state.state_file.unlink()
    Lab.remove(name=lab_spot.name, state_dir=lab_spot.state_root)
    assert lab_spot.leftovers() == []


def test_bad_subnet_is_refused_and_leaves_nothing(lab_spot: LabSpot) -> None:
    result = lab_spot.cli("up", "2", "--subnet", "10.77.0.300/24")
    assert result.returncode == 1 and "invalid subnet '10.77.0.300/24'" in result.stderr
    assert lab_spot.leftovers() == []


def test_a_subnet_in_use_is_refused_and_the_other_lab_stays(lab_spot: LabSpot, tmp_path: Path) -> None:
    first = lab_spot.up(1)
    with pytest.raises(LabError, match="overlaps addresses in use"):
        Lab.up(1, name="lother", subnet=lab_spot.subnet, state_dir=tmp_path)
    with first.client("h1") as client:
        assert client.ping()
    with pytest.raises(LabError, match="already exists"):
        lab_spot.up(1)


def test_up_failing_midway_removes_what_it_made(lab_spot: LabSpot, tmp_path: Path) -> None:
    broken = tmp_path / "pynode"
    broken.write_text("#!/bin/sh\necho 'pynode: cannot start' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(LabError, match="exited at start:\n.*cannot start"):
        Lab.up(2, name=lab_spot.name, subnet=lab_spot.subnet, state_dir=lab_spot.state_root, pynode=broken)
    assert lab_spot.leftovers() == []


def test_a_forward_drop_policy_is_found_so_up_can_warn_about_it(lab_spot: LabSpot) -> None:
    ns = f"{lab_spot.name}-h1"  # named like a lab host, so the fixture's sweep removes it if this test fails
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        nft = ["ip", "netns", "exec", ns, "nft"]
        subprocess.run([*nft, "add table inet t"], check=True)
        subprocess.run([*nft, "add chain inet t fw { type filter hook forward priority 0; policy drop; }"],
                       check=True)
        probe = "from orchestrator.lab.hosts import find_forward_drops; print(find_forward_drops())"
        out = subprocess.run(["ip", "netns", "exec", ns, PYTHON, "-c", probe], capture_output=True, text=True,
                             check=True).stdout
        assert out.strip() == "['inet t fw']"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_an_engines_network_lives_inside_its_host_and_goes_with_the_lab(lab_spot: LabSpot) -> None:
    lab = lab_spot.up(1)
    created = lab.exec("h1", "pynode", "network", "create", "front")
    assert created.returncode == 0, created.stderr
    bridge = f"br-{created.stdout.strip()[:12]}"
    assert bridge in lab.exec("h1", "ip", "-br", "link").stdout
    assert bridge not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    lab.down()
    assert lab_spot.leftovers() == []


def test_a_lab_used_as_a_context_manager_is_removed_on_exit(lab_spot: LabSpot) -> None:
    with lab_spot.up(1) as lab:
        assert lab.is_running("h1") and not lab.is_cut("h1")
    assert lab_spot.leftovers() == []
