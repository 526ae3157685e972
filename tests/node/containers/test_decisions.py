"""Pure decision code: create options, restart backoff, health transitions, log conversion, cgroup layout."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from node.containers import health, options, restart
from node.containers.logs import LogPump, Rotation, frame, log_files
from node.containers.model import Health, HealthStatus, Probe, State, Status, status_text
from node.errors import InvalidArgument
from node.runtime.cgroups import CgroupLayout, Mount, classify_layout
from node.runtime.oci import classify_start_error
from node.runtime.spec import ALL_CAPS, DEFAULT_CAPS, BundleRequest, apply_cap_changes, bounding_caps, build_spec


def test_parse_bind_forms() -> None:
    assert options.parse_bind("data:/d:ro") == options.MountSpec(type="volume", source="data", target="/d",
                                                                 read_only=True)
    assert options.parse_bind("/src:/d").type == "bind"
    assert options.parse_bind("/anon").type == "volume"
    for bad in ("a:b:c:d", "x:relative", "/s:/d:bogus", ""):
        with pytest.raises(InvalidArgument):
            options.parse_bind(bad)


def test_merge_config_as_docker() -> None:
    image = {"Entrypoint": ["/ep"], "Cmd": ["def"], "Env": ["A=1", "PATH=/x"], "WorkingDir": "/w"}
    merged = options.merge_config({"Cmd": ["mine"], "Env": ["A=2"]}, image, image_ref="img")
    assert options.command_of(merged) == ["/ep", "mine"]
    assert merged["Env"] == ["A=2", "PATH=/x"] and merged["WorkingDir"] == "/w"
    assert options.command_of(options.merge_config({"Entrypoint": ["sh"]}, image, image_ref="i")) == ["sh"]


def test_caps_and_sizes() -> None:
    hc = {"CapAdd": ["net_admin"], "CapDrop": ["CHOWN"]}
    caps = options.resolve_caps(hc)
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps
    with pytest.raises(InvalidArgument):
        options.resolve_caps({"CapAdd": ["NOPE"]})
    assert options.parse_bytes("32m") == 32 << 20
    with pytest.raises(InvalidArgument):
        options.parse_bytes("lots")


def test_all_capabilities_are_those_of_the_bounding_set() -> None:
    host = bounding_caps("Name:\tx\nCapBnd:\t000001fffeffffff\n")  # everything but CAP_SYS_RESOURCE (24)
    assert set(ALL_CAPS) - set(host) == {"CAP_SYS_RESOURCE"}
    assert bounding_caps("CapBnd:\t0000000000000001\n") == ("CAP_CHOWN",)
    assert apply_cap_changes(add=("ALL",), drop=(), available=host) == host
    assert apply_cap_changes(add=("ALL",), drop=("CAP_KILL",), available=host) == tuple(
        c for c in host if c != "CAP_KILL")
    assert apply_cap_changes(add=("CAP_NET_ADMIN",), drop=("ALL",), available=host) == ("CAP_NET_ADMIN",)
    request = BundleRequest(args=("sh",), env=(), rootfs="/r", cgroups_path="/p/x", available_caps=host)
    privileged = build_spec(replace(request, privileged=True, caps=()))
    assert privileged["process"]["capabilities"]["bounding"] == list(host)
    plain = build_spec(replace(request, available_caps=("CAP_CHOWN",)))
    assert plain["process"]["capabilities"]["effective"] == ["CAP_CHOWN"]


def test_restart_backoff_and_policies() -> None:
    on_failure = restart.RestartPolicy(name="on-failure", max_retries=2)
    assert restart.should_restart(on_failure, exit_code=1, restart_count=1, manually_stopped=False)
    assert not restart.should_restart(on_failure, exit_code=1, restart_count=2, manually_stopped=False)
    assert not restart.should_restart(on_failure, exit_code=0, restart_count=0, manually_stopped=False)
    delays = [0.0]
    for _ in range(12):
        delays.append(restart.next_delay(delays[-1], ran_for=0.1))
    assert delays[1:4] == [0.1, 0.2, 0.4] and max(delays) == 60.0
    assert restart.next_delay(30, ran_for=11) == 0.1


def test_health_transitions() -> None:
    settings = health.HealthSettings(argv=("true",), retries=2)
    fail = Probe(start="", end="", exit_code=1, output="")
    h = health.after_probe(Health(), fail, settings=settings, in_start_period=False)
    assert h.status is HealthStatus.STARTING and h.failing_streak == 1
    h = health.after_probe(h, fail, settings=settings, in_start_period=False)
    assert h.status is HealthStatus.UNHEALTHY
    ok = Probe(start="", end="", exit_code=0, output="")
    assert health.after_probe(h, ok, settings=settings, in_start_period=False).status is HealthStatus.HEALTHY


def test_status_text() -> None:
    s = State(status=Status.EXITED, exit_code=3, finished_at="2026-01-01T00:00:00Z")
    assert status_text(s, now=1767225602.0) == "Exited (3) 2 seconds ago"


def test_log_pump_converts_and_rotates(tmp_path: Path) -> None:
    src, dst = tmp_path / "ctr.log", tmp_path / "c-json.log"
    src.write_bytes(b"2026-01-01T00:00:00.1+00:00 stdout P par\n2026-01-01T00:00:00.2+00:00 stdout F t\n"
                    b"2026-01-01T00:00:00.3+00:00 stderr F e\n")
    pump = LogPump(source=src, target=dst, offset_file=tmp_path / "off", rotation=Rotation(max_size=60, max_file=2))
    assert pump.pump()
    pump.close()
    lines = [json.loads(x) for f in log_files(dst) if f.exists() for x in f.read_text().splitlines()]
    assert [(x["stream"], x["log"]) for x in lines] == [("stdout", "part\n"), ("stderr", "e\n")]
    assert (tmp_path / "c-json.log.1").exists()
    assert frame("stderr", b"x", tty=False) == b"\x02\x00\x00\x00\x00\x00\x00\x01x"


def test_cgroup_layouts() -> None:
    v1 = [Mount(point="/sys/fs/cgroup/memory", fstype="cgroup", options="")]
    assert classify_layout(v1)[0] is CgroupLayout.V1
    hybrid = [*v1, Mount(point="/sys/fs/cgroup/unified", fstype="cgroup2", options="")]
    assert classify_layout(hybrid) == (CgroupLayout.HYBRID, ("/sys/fs/cgroup/unified",))
    assert classify_layout([Mount(point="/sys/fs/cgroup", fstype="cgroup2", options="")])[0] is CgroupLayout.UNIFIED


def test_spec_defaults_and_start_errors() -> None:
    spec = build_spec(BundleRequest(args=("sh",), env=(), rootfs="/r", cgroups_path="/pynode/x", memory=1 << 25))
    assert spec["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPS)
    assert spec["linux"]["resources"]["memory"]["limit"] == 1 << 25
    assert {"type": "network"} in spec["linux"]["namespaces"]
    assert "mount" in spec["linux"]["seccomp"]["syscalls"][0]["names"]
    assert classify_start_error("executable file `x` not found in $PATH") == 127
    assert classify_start_error("open /etc/passwd: permission denied") == 126
