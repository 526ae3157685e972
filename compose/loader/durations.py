"""Go-style durations ("1m30s", "500ms") as Compose reads and prints them."""

from __future__ import annotations

import re
from decimal import Decimal

_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_TERM = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str | int | float) -> int:
    """Return nanoseconds; a bare number counts as seconds. Raise ValueError when malformed."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}")
    if isinstance(text, int | float):
        return int(Decimal(str(text)) * _UNIT_NS["s"])
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return int(Decimal(value) * _UNIT_NS["s"])
    pos, total = 0, Decimal(0)
    for match in _TERM.finditer(value):
        if match.start() != pos:
            break
        total += Decimal(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"invalid duration {text!r}")
    return int(total)


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(ns: int) -> str:
    """Print nanoseconds the way Go's time.Duration.String() does (and so `docker compose config`)."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}µs"
    if ns < 10**9:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if hours or minutes else ""
    return f"{sign}{out}{_fraction(rest, 10**9)}s"
