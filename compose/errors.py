"""The compose package's exception root."""

from __future__ import annotations


class ComposeError(Exception):
    """Root of every error pycompose raises on purpose; the message is meant for a user."""
