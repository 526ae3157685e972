"""Logs as Docker's json-file driver keeps them: a last line without a newline is not lost, and rotation
bounds the disk the container's logs take (conmon's own k8s file included), while `logs --tail` still shows
the newest lines. The pump from conmon's file first, then through the CLI against a real daemon."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.containers.logs import LogPump, Rotation, log_files
from tests.support.engine import EngineProcess

Unique = Callable[[str], str]
T = "2026-01-01T00:00:00.{}+00:00"


def _k8s(*lines: tuple[str, str, str]) -> bytes:
    return b"".join(f"{T.format(n)} {stream} {tag} {text}\n".encode() for n, (stream, tag, text) in enumerate(lines))


def _logged(target: Path) -> list[tuple[str, str]]:
    return [(entry["stream"], entry["log"]) for path in log_files(target) if path.exists()
            for entry in map(json.loads, path.read_text().splitlines())]


@pytest.fixture
def pump_at(tmp_path: Path) -> Iterator[Callable[..., LogPump]]:
    made: list[LogPump] = []

    def make() -> LogPump:
        made.append(LogPump(source=tmp_path / "ctr.log", target=tmp_path / "c-json.log",
                            offset_file=tmp_path / "k8s.offset", rotation=Rotation()))
        return made[-1]

    yield make
    for pump in made:
        pump.close()


def test_a_last_partial_line_is_written_when_the_container_exits(tmp_path: Path,
                                                                 pump_at: Callable[..., LogPump]) -> None:
    (tmp_path / "ctr.log").write_bytes(_k8s(("stdout", "F", "a"), ("stdout", "P", "b"), ("stderr", "P", "e")))
    pump = pump_at()
    pump.pump()
    assert _logged(tmp_path / "c-json.log") == [("stdout", "a\n")]  # b may still get the rest of its line
    assert pump.flush()
    assert _logged(tmp_path / "c-json.log") == [("stdout", "a\n"), ("stdout", "b"), ("stderr", "e")]


def test_a_pending_partial_line_survives_a_new_pump(tmp_path: Path, pump_at: Callable[..., LogPump]) -> None:
    source = tmp_path / "ctr.log"
    source.write_bytes(_k8s(("stdout", "F", "one"), ("stdout", "P", "tw")))
    pump_at().pump()
    with open(source, "ab") as fh:  # the daemon restarted in between: a new pump reads the offset file
        fh.write(_k8s(("stdout", "F", "o")))
    pump_at().pump()
    assert _logged(tmp_path / "c-json.log") == [("stdout", "one\n"), ("stdout", "two\n")]


def test_the_pump_follows_conmon_replacing_its_file(tmp_path: Path, pump_at: Callable[..., LogPump]) -> None:
    source = tmp_path / "ctr.log"
    source.write_bytes(_k8s(("stdout", "F", "first")))
    pump = pump_at()
    pump.pump()
    with open(source, "ab") as fh:  # conmon ends the old file, then renames a fresh one over it
        fh.write(_k8s(("stdout", "F", "second")))
    fresh = tmp_path / "ctr.log.tmp"
    fresh.write_bytes(_k8s(("stdout", "F", "3")))
    fresh.replace(source)
    pump.pump()
    assert _logged(tmp_path / "c-json.log") == [("stdout", "first\n"), ("stdout", "second\n"), ("stdout", "3\n")]
    pump.close()  # the daemon stops; conmon replaces its file meanwhile, with a line of the same size
    fresh.write_bytes(_k8s(("stdout", "F", "4")))
    fresh.replace(source)
    pump_at().pump()  # the offset on disk belongs to the old file: the new one is read from its start
    assert _logged(tmp_path / "c-json.log")[-1] == ("stdout", "4\n")


# --- through a real daemon ------------------------------------------------------------------------


@pytest.fixture
def names(busybox_engine: EngineProcess, unique: Unique) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    if made:
        busybox_engine.cli("rm", "-f", *made, check=False)


@pytest.mark.privileged
def test_logs_show_a_last_line_without_a_newline(busybox_engine: EngineProcess, names: Callable[[str], str]) -> None:
    e = busybox_engine
    plain, both, slow = names("partial"), names("partial2"), names("partial3")
    e.cli("run", "-d", "--name", plain, "busybox", "printf", "a\\nb")
    e.cli("run", "-d", "--name", both, "busybox", "sh", "-c", "printf 'o\\nout'; printf err >&2")
    e.cli("wait", plain, both)
    assert e.cli("logs", plain).stdout == "a\nb"
    shown = e.cli("logs", both)
    assert (shown.stdout, shown.stderr) == ("o\nout", "err")
    # a line written in pieces is one line; the follower sees the unfinished last one when the stream ends
    e.cli("run", "-d", "--name", slow, "busybox", "sh", "-c", "printf hel; sleep 0.5; echo lo; sleep 0.5; printf end")
    assert e.cli("logs", "-f", slow, timeout=30).stdout == "hello\nend"
    assert len(e.cli("logs", "-t", slow).stdout.splitlines()) == 2


@pytest.mark.privileged
def test_rotation_bounds_every_log_file_of_the_container(busybox_engine: EngineProcess,
                                                         names: Callable[[str], str]) -> None:
    e, name = busybox_engine, names("rotating")
    pad = "0123456789" * 9
    cid = e.cli("run", "-d", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox",
                "sh", "-c", f"seq 2000 | sed 's/.*/line-&-{pad}/'; sleep 100").stdout.strip()  # ~200 kB
    bundle = e.data_root / "containers" / cid

    def log_bytes() -> int:
        return sum(p.stat().st_size for p in bundle.iterdir() if "log" in p.name and p.is_file())

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "line-2000-" not in e.cli("logs", "--tail", "1", name).stdout:
        time.sleep(0.2)
    assert e.cli("logs", "--tail", "1", name).stdout.startswith("line-2000-")
    assert log_bytes() <= 8 * 1024, {p.name: p.stat().st_size for p in bundle.iterdir()}
    assert os.path.exists(bundle / "ctr.log")  # conmon's file: still written to, but started afresh
