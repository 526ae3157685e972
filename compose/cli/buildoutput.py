"""Plain build output of several services built at once, as compose's bake prints it: every `#N` step of
every build gets a number of its own, and a step's name says whose it is (`#7 [web 2/3] RUN ...`)."""

from __future__ import annotations

import re
import threading

_STEP = re.compile(r"^#(\d+) (.*)$", re.DOTALL)


class BuildOutput:
    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def render(self, service: str, line: str) -> str:
        """One line of `service`'s BuildKit plain output, renumbered and named for the project's output."""
        match = _STEP.match(line)
        if match is None:
            return line
        number, rest = match.groups()
        with self._lock:
            renumbered = self._numbers.setdefault((service, number), len(self._numbers) + 1)
        if rest.startswith("["):
            rest = f"[{service} {rest[1:]}"
        return f"#{renumbered} {rest}"
