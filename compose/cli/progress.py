"""Progress output like Compose v2: a live line per resource on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console, Group


@dataclass(slots=True)
class _Line:
    kind: str
    name: str
    status: str
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    error: bool = False


class PlainProgress:
    """`--progress plain`, or stderr is not a terminal: one line per state change."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def update(self, kind: str, name: str, status: str, *, done: bool = False, error: bool = False) -> None:
        with self._lock:
            self.stream.write(f" {kind} {name}  {status}\n")
            self.stream.flush()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class QuietProgress(PlainProgress):
    def update(self, kind: str, name: str, status: str, *, done: bool = False, error: bool = False) -> None:
        return None


class TtyProgress:
    """A rich Live view: `[+] Running 2/3` then one line per resource with a spinner or a mark."""

    def __init__(self, title: str, *, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.console = console or Console(stderr=True)
        self._lines: dict[tuple[str, str], _Line] = {}
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=self.console, refresh_per_second=10, transient=False,
                          get_renderable=self._render)

    def update(self, kind: str, name: str, status: str, *, done: bool = False, error: bool = False) -> None:
        with self._lock:
            line = self._lines.get((kind, name))
            if line is None or line.ended is not None:
                line = self._lines[(kind, name)] = _Line(kind=kind, name=name, status=status)
            line.status = status
            line.error = error
            if done:
                line.ended = time.monotonic()

    def _render(self) -> Group:
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            lines = list(self._lines.values())
        finished = sum(1 for line in lines if line.ended is not None)
        width = max((len(f"{line.kind} {line.name}") for line in lines), default=0)
        rows = [Text(f"[+] {self.title} {finished}/{len(lines)}", style="bold")]
        for line in lines:
            mark = ("✘" if line.error else "✔") if line.ended is not None else "⠿"
            style = "red" if line.error else "green" if line.ended is not None else "blue"
            elapsed = (line.ended or time.monotonic()) - line.started
            label = f"{line.kind} {line.name}".ljust(width)
            row = Text(" ")
            row.append(mark, style=style)
            row.append(f" {label}  ")
            row.append(line.status.ljust(10), style=style)
            row.append(f"  {elapsed:.1f}s", style="dim")
            rows.append(row)
        return Group(*rows)

    def __enter__(self) -> TtyProgress:
        self._live.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._live.stop()


def make_progress(mode: str, title: str) -> PlainProgress | TtyProgress:
    """`--progress auto|tty|plain|quiet`: auto is tty when stderr is a terminal."""
    if mode == "quiet":
        return QuietProgress()
    if mode == "tty" or (mode == "auto" and sys.stderr.isatty()):
        return TtyProgress(title)
    return PlainProgress()
