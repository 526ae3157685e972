"""Finding the Compose files, the project directory, the environment and the project name."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from compose.loader.envfile import read_env_file
from compose.loader.errors import LoadError

CANDIDATES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDES = ("compose.override.yaml", "compose.override.yml",
             "docker-compose.override.yaml", "docker-compose.override.yml")
_VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _first_existing(directory: Path, names: Sequence[str]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def find_config_files(start: Path) -> list[Path]:
    """compose.yaml (or a sibling name) in `start` or its nearest parent, plus its override file."""
    for directory in (start, *start.parents):
        found = _first_existing(directory, CANDIDATES)
        if found:
            override = _first_existing(directory, OVERRIDES)
            return [found, override] if override else [found]
    raise LoadError.at(str(start), "", "no configuration file provided: not found "
                       f"(looked for {', '.join(CANDIDATES)} here and in parent directories)")


def resolve_config_files(
    files: Sequence[str | Path], *, cwd: Path, environ: Mapping[str, str], project_directory: Path | None
) -> list[Path]:
    """-f files (relative to cwd), else COMPOSE_FILE, else the search; every file must exist."""
    names: list[str | Path] = list(files)
    if not names and environ.get("COMPOSE_FILE"):
        separator = environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        names = [n for n in environ["COMPOSE_FILE"].split(separator) if n]
    if not names:
        return find_config_files(project_directory or cwd)
    paths = [Path(os.path.normpath(cwd / Path(n).expanduser())) for n in names]
    for path in paths:
        if not path.is_file():
            raise LoadError.at(str(path), "", "no such file")
    return paths


def load_environment(
    *, shell: Mapping[str, str], env_files: Sequence[str | Path], cwd: Path, project_dir: Path
) -> dict[str, str]:
    """Shell variables win over `--env-file` files (later ones win) or the project's `.env`."""
    dotenv: dict[str, str] = {}
    if env_files:
        for name in env_files:
            dotenv.update(read_env_file(cwd / Path(name).expanduser(), environ={**dotenv, **shell}))
    elif (project_dir / ".env").is_file():
        dotenv = read_env_file(project_dir / ".env", environ=shell)
    return {**dotenv, **shell}


def normalize_project_name(name: str) -> str:
    """Compose's rule for names derived from a directory: lowercase, [a-z0-9_-], no leading _ or -."""
    kept = "".join(re.findall(r"[a-z0-9_-]", name.lower()))
    return kept.lstrip("_-")


def _check_name(name: str, origin: str) -> str:
    if not _VALID_NAME.match(name):
        raise LoadError.at(origin, "", f"invalid project name {name!r}: must consist only of lowercase "
                           "alphanumeric characters, hyphens, and underscores as well as start with a "
                           "letter or digit")
    return name


def choose_project_name(
    *, explicit: str | None, environ: Mapping[str, str], declared: str | None, project_dir: Path, file: str
) -> str:
    """-p, then COMPOSE_PROJECT_NAME, then top-level `name:`, then the project directory's name."""
    if explicit:
        return _check_name(explicit, "--project-name")
    if environ.get("COMPOSE_PROJECT_NAME"):
        return _check_name(environ["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME")
    if declared:
        return _check_name(declared, f"{file}: name")
    derived = normalize_project_name(project_dir.name)
    if not derived:
        raise LoadError.at(str(project_dir), "", "project name can't be derived from the directory name; "
                           "use -p or a top-level `name:`")
    return derived
