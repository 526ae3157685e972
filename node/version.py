"""Versions reported by `pynode version` and `/version`."""

from __future__ import annotations

ENGINE_VERSION = "0.1.0"
API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
