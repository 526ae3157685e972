"""Lab hosts: several pynode hosts on one machine (network namespaces on a bridge), for tests and demos."""

from __future__ import annotations

from orchestrator.lab.errors import LabError
from orchestrator.lab.lab import Lab
from orchestrator.lab.state import LabHost, LabState

__all__ = ["Lab", "LabError", "LabHost", "LabState"]
