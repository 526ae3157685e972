"""Restart policies and Docker's backoff (100 ms, doubling, capped at 1 min, reset after 10 s of running)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    name: str = "no"
    max_retries: int = 0

    @classmethod
    def of(cls, host_config: dict[str, Any]) -> RestartPolicy:
        raw = host_config.get("RestartPolicy") or {}
        return cls(name=raw.get("Name") or "no", max_retries=int(raw.get("MaximumRetryCount") or 0))


def should_restart(policy: RestartPolicy, *, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    """After an exit the engine did not ask for: does the policy bring the container back?"""
    if manually_stopped:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure":
        return exit_code != 0 and (policy.max_retries == 0 or restart_count < policy.max_retries)
    return False


def starts_with_daemon(policy: RestartPolicy, *, manually_stopped: bool) -> bool:
    return policy.name == "always" or (policy.name == "unless-stopped" and not manually_stopped)


def next_delay(previous: float, *, ran_for: float) -> float:
    if ran_for >= RESET_AFTER or previous <= 0:
        return INITIAL_DELAY
    return min(previous * 2, MAX_DELAY)
