"""Errors raised while loading a Compose project; each names the file and the key path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from compose.errors import ComposeError


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One problem found in one place of one file."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.path, self.message) if part)


class LoadError(ComposeError):
    """The project could not be loaded; `issues` lists every problem found."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    @classmethod
    def at(cls, file: str, path: str, message: str) -> LoadError:
        return cls([Issue(file=file, path=path, message=message)])


class ConfigValidationError(LoadError):
    """The file does not follow the Compose schema; all violations are reported at once."""


def format_path(parts: Sequence[str | int]) -> str:
    """Render ('services', 'web', 'ports', 0) as 'services.web.ports[0]'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
