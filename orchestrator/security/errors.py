"""Errors of the cluster's PKI and join tokens."""

from __future__ import annotations

from orchestrator.errors import OrchestratorError


class SecurityError(OrchestratorError):
    """Root of the security errors."""


class CertificateError(SecurityError):
    """A certificate or CSR is unreadable, not ours, expired, or lacks a role."""


class InvalidJoinToken(SecurityError):
    """A join token is malformed, has a wrong secret, or names another CA."""
