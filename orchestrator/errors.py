"""The orchestrator package's exception root."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every error the cluster raises on purpose; the message is meant for a user."""
