"""Shared CLI helpers: the client from `-H`, tables, sizes and durations as Docker spells them."""

from __future__ import annotations

import datetime as dt
import re

import click

from orchestrator.client import ControlClient

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def client(ctx: click.Context) -> ControlClient:
    return ControlClient(ctx.find_root().obj.get("host"))


def table(rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())


def parse_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)b?", text.strip().lower())
    if match is None:
        raise click.BadParameter(f"invalid size {text!r} (e.g. 64M, 1G)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_duration(text: str) -> float:
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r} (e.g. 5s, 500ms, 1m30s)")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def parse_cpus(text: str) -> int:
    try:
        return int(float(text) * 1_000_000_000)
    except ValueError:
        raise click.BadParameter(f"invalid CPU count {text!r} (e.g. 0.5)") from None


def since(timestamp: str) -> str:
    """ "5 seconds ago" from an RFC 3339 time."""
    if not timestamp:
        return ""
    then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((dt.datetime.now(dt.UTC) - then).total_seconds()))
    if seconds < 2:
        return "Less than a second ago"
    if seconds < 60:
        return f"{seconds} seconds ago"
    if seconds < 3600:
        return f"{seconds // 60} minute{'s' if seconds >= 120 else ''} ago"
    return f"{seconds // 3600} hour{'s' if seconds >= 7200 else ''} ago"


def key_values(items: tuple[str, ...], what: str) -> dict[str, str]:
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"invalid {what} {item!r}: expected key=value")
        found[key] = value if sep else ""
    return found
