"""pycompose: the command line. Parses options, loads the project, renders; no domain logic here.

Commands in other modules attach themselves to `main` (`@main.command()`), get the global
options with `global_options(ctx)` and the project with `load_from_context(ctx, services=...)`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import yaml

from compose.errors import ComposeError
from compose.loader import LoadError, LoadOptions, load_project
from compose.model import Project
from node.errors import NodeError


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalOptions:
    files: tuple[str, ...] = ()
    project_name: str | None = None
    project_directory: str | None = None
    env_files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    host: str | None = None
    progress: str = "auto"  # auto | tty | plain | quiet
    ansi: str = "auto"  # auto | never | always
    parallel: int = -1


def global_options(ctx: click.Context) -> GlobalOptions:
    found = ctx.find_object(GlobalOptions)
    return found if found is not None else GlobalOptions()


def build_load_options(
    ctx: click.Context, *, services: Sequence[str] = (), interpolate: bool = True
) -> LoadOptions:
    """LoadOptions from the group's options; `services` named on the command line are enabled."""
    opts = global_options(ctx)
    return LoadOptions(files=opts.files, project_name=opts.project_name, project_directory=opts.project_directory,
                       env_files=opts.env_files, profiles=opts.profiles, services=tuple(services),
                       interpolate=interpolate)


def load_from_context(ctx: click.Context, *, services: Sequence[str] = (), interpolate: bool = True,
                      from_labels: bool = False) -> Project:
    """Load the project for a command and print the loader's warnings on stderr.

    `from_labels`: with no compose file here but a project name (`-p`, COMPOSE_PROJECT_NAME), load the
    files its containers were made from (their `project.config_files` and `project.working_dir` labels),
    as `docker compose -p NAME down` does anywhere."""
    options = build_load_options(ctx, services=services, interpolate=interpolate)
    try:
        project = load_project(options)
    except LoadError as exc:
        name = options.project_name or os.environ.get("COMPOSE_PROJECT_NAME")
        if not from_labels or options.files or not name or "no configuration file provided" not in str(exc):
            raise
        project = _load_from_labels(ctx, options, name) or _raise(exc)
    for warning in project.warnings:
        click.echo(f"WARN: {warning}", err=True)
    return project


def _raise(exc: Exception) -> Project:
    raise exc


def _load_from_labels(ctx: click.Context, options: LoadOptions, name: str) -> Project | None:
    from compose.cli.session import container_summary, engine_client
    from compose.planner import CONFIG_FILES_LABEL, WORKING_DIR_LABEL

    for container in container_summary(engine_client(ctx), name):
        labels = container.get("Labels") or {}
        files = tuple(f for f in labels.get(CONFIG_FILES_LABEL, "").split(",") if f)
        if files and all(os.path.isfile(f) for f in files):
            return load_project(replace(options, files=files, project_name=name,
                                        project_directory=labels.get(WORKING_DIR_LABEL) or None))
    return None


class ComposeGroup(click.Group):
    """Turns a ComposeError from any command into its message on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ComposeError, NodeError) as exc:  # NodeError: the engine, e.g. gone mid-way
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
            sys.exit(1)


@click.group(cls=ComposeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "files", multiple=True, help="Compose configuration files.")
@click.option("-p", "--project-name", help="Project name.")
@click.option("--project-directory", help="Alternate working directory (default: the first file's).")
@click.option("--env-file", "env_files", multiple=True, help="Alternate environment files.")
@click.option("--profile", "profiles", multiple=True, help="Profiles to enable.")
@click.option("-H", "--host", envvar="PYNODE_HOST", default=None, metavar="URL",
              help="Engine socket (default unix:///run/pynode/pynode.sock; env PYNODE_HOST).")
@click.option("--progress", type=click.Choice(["auto", "tty", "plain", "quiet"]), default="auto",
              show_default=True, help="Type of progress output.")
@click.option("--ansi", type=click.Choice(["auto", "never", "always"]), default="auto", show_default=True,
              help="Control when to print ANSI control characters.")
@click.option("--parallel", type=int, default=-1, envvar="COMPOSE_PARALLEL_LIMIT",
              help="Control max parallelism, -1 for a default.")
@click.pass_context
def main(
    ctx: click.Context, files: tuple[str, ...], project_name: str | None, project_directory: str | None,
    env_files: tuple[str, ...], profiles: tuple[str, ...], host: str | None, progress: str, ansi: str,
    parallel: int,
) -> None:
    """Define and run multi-container applications on one pynode engine."""
    ctx.obj = GlobalOptions(files=files, project_name=project_name, project_directory=project_directory,
                            env_files=env_files, profiles=profiles, host=host, progress=progress, ansi=ansi,
                            parallel=parallel)


class _IndentedDumper(yaml.SafeDumper):
    """Indents lists under their key, as `docker compose config` does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def render_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_IndentedDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=1 << 16)


def _restrict(document: dict[str, Any], services: Sequence[str]) -> dict[str, Any]:
    if not services:
        return document
    return {**document, "services": {k: v for k, v in document["services"].items() if k in services}}


@main.command("config")
@click.argument("services", nargs=-1)
@click.option("--format", "output_format", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True, help="Output format.")
@click.option("--services", "list_services", is_flag=True, help="Print the service names, one per line.")
@click.option("--volumes", "list_volumes", is_flag=True, help="Print the volume names, one per line.")
@click.option("--profiles", "list_profiles", is_flag=True, help="Print the profile names, one per line.")
@click.option("--no-interpolate", is_flag=True, help="Don't interpolate environment variables.")
@click.option("-q", "--quiet", is_flag=True, help="Only validate the configuration, don't print anything.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Save to this file.")
@click.pass_context
def config_command(
    ctx: click.Context, services: tuple[str, ...], output_format: str, list_services: bool, list_volumes: bool,
    list_profiles: bool, no_interpolate: bool, quiet: bool, output: Path | None,
) -> None:
    """Parse, resolve and render the Compose file in canonical format."""
    project = load_from_context(ctx, services=services, interpolate=not no_interpolate)
    if quiet:
        return
    if list_services or list_volumes or list_profiles:
        names = (project.services if list_services else project.volumes if list_volumes else project.profiles)
        text = "".join(f"{name}\n" for name in names)
    else:
        document = _restrict(dict(project.raw), services)
        text = json.dumps(document, indent=2) + "\n" if output_format == "json" else render_yaml(document)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _version() -> str:
    from importlib import metadata  # lazily: a tenth of a second at start-up

    try:
        return metadata.version("pycontainers")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@main.command("version")
@click.option("--short", is_flag=True, help="Show only the version number.")
def version_command(short: bool) -> None:
    """Show the pycompose version information."""
    click.echo(_version() if short else f"pycompose version v{_version()}")


# Command modules attach themselves to `main`.
from compose.cli import containers, execution, lifecycle  # noqa: E402, F401
