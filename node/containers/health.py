"""Healthcheck decisions (pure): probe settings from the config, and the state after each probe."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from node.containers.model import Health, HealthStatus, Probe

NS = 1_000_000_000
MAX_LOG = 5
MAX_OUTPUT = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    argv: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


def settings_of(config: dict[str, Any]) -> HealthSettings | None:
    hc = config.get("Healthcheck") or {}
    test = list(hc.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        argv: tuple[str, ...] = ("/bin/sh", "-c", " ".join(test[1:]))
    elif test[0] == "CMD":
        argv = tuple(test[1:])
    else:
        argv = ("/bin/sh", "-c", " ".join(test))
    if not argv:
        return None
    return HealthSettings(
        argv=argv,
        interval=(hc.get("Interval") or 30 * NS) / NS,
        timeout=(hc.get("Timeout") or 30 * NS) / NS,
        retries=int(hc.get("Retries") or 3),
        start_period=(hc.get("StartPeriod") or 0) / NS,
    )


def after_probe(health: Health, probe: Probe, *, settings: HealthSettings, in_start_period: bool) -> Health:
    log = (*health.log, replace(probe, output=probe.output[:MAX_OUTPUT]))[-MAX_LOG:]
    if probe.exit_code == 0:
        return Health(status=HealthStatus.HEALTHY, failing_streak=0, log=log)
    if in_start_period and health.status is HealthStatus.STARTING:
        return replace(health, log=log)
    streak = health.failing_streak + 1
    status = HealthStatus.UNHEALTHY if streak >= settings.retries else health.status
    return Health(status=status, failing_streak=streak, log=log)
