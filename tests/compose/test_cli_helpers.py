"""The CLI's small pure parts: log framing and prefixes, -p parsing, progress lines."""

from __future__ import annotations

import io
import re
import struct

from compose.cli.execution import _publish
from compose.cli.logstream import LogPrinter, demux, short_name
from compose.cli.progress import PlainProgress


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_demux_reassembles_frames_split_anywhere() -> None:
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"more")
    chunks = [data[i:i + 3] for i in range(0, len(data), 3)]
    assert list(demux(chunks, tty=False)) == [(1, b"out\n"), (2, b"err\n"), (1, b"more")]
    assert list(demux([b"raw"], tty=True)) == [(1, b"raw")]


def test_prefixes_are_padded_and_coloured_per_service() -> None:
    out = io.BytesIO()
    printer = LogPrinter(["web-1", "worker-10"], ["web", "worker"], colour=True, out=out)
    printer.line("web-1", "web", b"hello\n")
    printer.line("worker-10", "worker", b"x")
    lines = out.getvalue().decode().splitlines()
    assert lines[0] == "\x1b[36mweb-1      | \x1b[0mhello"
    assert lines[1] == "\x1b[33mworker-10  | \x1b[0mx"
    plain = io.BytesIO()
    LogPrinter(["a-1"], ["a"], colour=False, prefix=False, out=plain).line("a-1", "a", b"text")
    assert plain.getvalue() == b"text\n"


def test_short_names() -> None:
    assert short_name("shop", "shop-web-1") == "web-1"
    assert short_name("shop", "custom-name") == "custom-name"


def test_publish_flags() -> None:
    assert _publish(("8080:80", "127.0.0.1:53:53/udp", "9000")) == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "53"}],
        "9000/tcp": [{"HostIp": "", "HostPort": ""}],
    }


def test_plain_progress_lines() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.update("Container", "app-web-1", "Started", done=True)
    assert stream.getvalue() == " Container app-web-1  Started\n"


def test_tty_progress_is_a_live_line_per_resource() -> None:
    from rich.console import Console

    from compose.cli.progress import TtyProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=100)
    with TtyProgress("Running", console=console) as progress:
        progress.update("Network", "app_default", "Creating")
        progress.update("Network", "app_default", "Created", done=True)
        progress.update("Container", "app-web-1", "Starting")
        progress.update("Container", "app-db-1", "Error", done=True, error=True)
        console.print(progress._render())
    frame = out.getvalue().split("[+] Running")[-1]
    lines = [line.rstrip() for line in frame.splitlines()]
    assert lines[0] == " 2/3"
    assert re.fullmatch(r" ✔ Network app_default  Created +\d+\.\ds", lines[1]), lines  # names padded alike
    assert re.fullmatch(r" ⠿ Container app-web-1  Starting +\d+\.\ds", lines[2]), lines
    assert re.fullmatch(r" ✘ Container app-db-1   Error +\d+\.\ds", lines[3]), lines
