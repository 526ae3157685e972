"""Build progress as BuildKit's plain output: numbered vertices, their output lines with the time since the
vertex started, ``CACHED``, ``DONE 0.3s`` or ``ERROR: ...``.

    #4 [builder 2/3] RUN make
    #4 0.212 cc -o app app.c
    #4 DONE 1.4s

Lines go to an ``emit`` callback as text (the API wraps each in Docker's ``{"stream": ...}``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

Emit = Callable[[str], None]
TAIL_LINES = 10


class Progress:
    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self._next = 0

    def vertex(self, name: str) -> Vertex:
        self._next += 1
        return Vertex(self, self._next, name)


class Vertex:
    def __init__(self, progress: Progress, number: int, name: str) -> None:
        self.progress = progress
        self.number = number
        self.name = name
        self.started = time.monotonic()
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._partial = ""
        progress.emit(f"#{number} {name}\n")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, text: str) -> None:
        rendered = f"#{self.number} {self.elapsed:.3f} {text}"
        self.tail.append(rendered)
        self.progress.emit(rendered + "\n")

    def output(self, chunk: str) -> None:
        """Process output, split into lines (a last partial line waits for its end or ``flush``)."""
        text = self._partial + chunk
        *lines, self._partial = text.split("\n")
        for line in lines:
            self.line(line.rstrip("\r"))

    def flush(self) -> None:
        if self._partial:
            self.line(self._partial)
            self._partial = ""

    def note(self, text: str) -> None:
        self.progress.emit(f"#{self.number} {text}\n")

    def cached(self) -> None:
        self.progress.emit(f"#{self.number} CACHED\n\n")

    def done(self) -> None:
        self.flush()
        self.progress.emit(f"#{self.number} DONE {self.elapsed:.1f}s\n\n")

    def error(self, message: str) -> None:
        self.flush()
        self.progress.emit(f"#{self.number} ERROR: {message}\n")


def failure_report(*, label: str, tail: Sequence[str], filename: str, lines: Sequence[str], lineno: int,
                   end_lineno: int) -> str:  # fmt: skip
    """BuildKit's failure block: the step, its last output lines, and the Dockerfile around it."""
    out = ["------", f" > {label}:", *tail, "------", f"{filename}:{lineno}" if lineno == end_lineno
           else f"{filename}:{lineno}-{end_lineno}", "--------------------"]  # fmt: skip
    first = max(1, lineno - 2)
    last = min(len(lines), end_lineno + 2)
    width = len(str(last))
    for number in range(first, last + 1):
        marker = ">>> " if lineno <= number <= end_lineno else ""
        out.append(f" {number:>{width}} | {marker}{lines[number - 1]}")
    out.append("--------------------")
    return "\n".join(out) + "\n"
