"""Lab errors: the message is for the user of `pyswarm lab`."""

from __future__ import annotations

from orchestrator.errors import OrchestratorError


class LabError(OrchestratorError):
    """A lab could not be made, found, changed or removed; the message says which and why."""
