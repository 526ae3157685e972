"""The engine's exception root. API modules map these to HTTP status codes; CLIs to exit codes."""

from __future__ import annotations


class NodeError(Exception):
    """Root of every error the engine raises on purpose. The message is one line, meant for a user."""

    status = 500


class InvalidArgument(NodeError):
    """The request itself is wrong: a bad flag, a malformed spec, a value out of range."""

    status = 400


class NotFound(NodeError):
    status = 404


class Conflict(NodeError):
    """The request clashes with current state: a name in use, an object still referenced."""

    status = 409


class NotModified(NodeError):
    status = 304


class EngineFailure(NodeError):
    """The engine could not do what was asked (kernel, runtime or disk failure)."""

    status = 500
