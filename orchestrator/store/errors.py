"""Errors the store raises; all derive from `OrchestratorError`."""

from __future__ import annotations

from orchestrator.errors import OrchestratorError


class StoreError(OrchestratorError):
    """Root of the store's errors."""


class VersionConflict(StoreError):
    """An update or delete named a version that is no longer the stored one."""


class ObjectNotFound(StoreError):
    """An update or delete named an object the store does not hold."""


class ObjectExists(StoreError):
    """A create named an id (or a unique name) the store already holds."""


class InvalidOperation(StoreError):
    """A proposed operation could not be read (bad kind, bad object)."""


class QuorumLost(StoreError):
    """A write did not commit in time: too few managers are reachable. Its outcome is unknown."""


class NotLeader(StoreError):
    """The write was refused or dropped because leadership changed; it may be retried."""
