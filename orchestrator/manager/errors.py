"""Errors the control API maps to HTTP status codes (the only place that knows them is api.py)."""

from __future__ import annotations

from orchestrator.errors import OrchestratorError


class ControlError(OrchestratorError):
    """Root of the control API's errors."""


class NotFound(ControlError):
    pass


class Conflict(ControlError):
    pass


class BadRequest(ControlError):
    pass


class Forbidden(ControlError):
    pass


class Unavailable(ControlError):
    """This node cannot answer: not a manager, no leader, no quorum."""
