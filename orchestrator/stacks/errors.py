"""Errors of `stack deploy`: a compose project the cluster can't deploy as written."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.errors import OrchestratorError


class StackError(OrchestratorError):
    """The project can't be deployed; `issues` lists every problem, each `"<location>: <message>"` as
    compose's validation errors read (`services.web.privileged: ...`)."""

    def __init__(self, issues: Iterable[str]) -> None:
        self.issues: tuple[str, ...] = tuple(issues)
        super().__init__("\n".join(self.issues))
