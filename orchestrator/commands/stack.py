"""`pyswarm stack deploy|ls|ps|services|rm`: a compose file on the cluster.

`deploy` runs on a manager: it loads the files with compose's loader, builds and pins the images
(orchestrator/stacks/images.py), maps the project (orchestrator/stacks/mapping.py) and sends the deployment
to the control API, which applies it in one transaction.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from orchestrator.client import ControlClient, ControlError
from orchestrator.commands.common import client, table
from orchestrator.commands.service import desired_state_params, print_services, print_tasks
from orchestrator.model import to_dict
from orchestrator.stacks.model import NAMESPACE_LABEL


@click.group()
def stack() -> None:
    """Manage stacks (compose files deployed on the swarm)."""


@stack.command()
@click.option("-c", "--compose-file", "files", multiple=True, required=True,
              help="Path to a compose file (repeat to merge, as pycompose -f).")
@click.option("--env-file", "env_files", multiple=True, help="Environment file for interpolation (default: .env).")
@click.option("--profile", "profiles", multiple=True, help="Enable a profile.")
@click.option("--prune", is_flag=True, help="Remove services of the stack that the file no longer has.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors (no build output).")
@click.argument("name")
@click.pass_context
def deploy(ctx: click.Context, files: tuple[str, ...], env_files: tuple[str, ...], profiles: tuple[str, ...],
           prune: bool, quiet: bool, name: str) -> None:
    """Deploy a new stack or update an existing one."""
    # loaded here, not at start-up: compose's loader and builder cost every pyswarm command ~100 ms
    from orchestrator.stacks.images import build_and_pin
    from orchestrator.stacks.mapping import load_stack, map_project, read_contents

    control = client(ctx)
    control.get("/swarm")  # a worker is refused here, before anything is built
    environ = dict(os.environ)
    if not profiles and environ.get("COMPOSE_PROFILES"):
        profiles = tuple(p for p in environ["COMPOSE_PROFILES"].split(",") if p)
    project = load_stack(stack=name, files=[Path(f) for f in files], env_files=[Path(f) for f in env_files],
                         profiles=profiles, environ=environ)
    def echo(service: str, line: str) -> None:
        if not quiet:
            for part in line.rstrip("\n").splitlines():
                click.echo(f"{service}  | {part}")

    images = build_and_pin(control.engine_url, project, on_line=echo)
    deployment = map_project(project, images=images, contents=read_contents(project, environ))
    for warning in deployment.warnings:
        click.echo(f"Ignoring: {warning}", err=True)
    result = control.post("/stacks", params={"prune": "true" if prune else "false"}, json=to_dict(deployment))
    for action in result["Actions"]:
        click.echo(action)
    if not result["Actions"]:
        click.echo(f"Stack {name} is up to date")


@stack.command(name="ls")
@click.pass_context
def list_stacks(ctx: click.Context) -> None:
    """List stacks."""
    rows = [["NAME", "SERVICES"]]
    rows += [[s["Name"], str(s["Services"])] for s in client(ctx).get("/stacks")]
    table(rows)


def _stack_services(control: ControlClient, name: str) -> list[dict[str, Any]]:
    services = [s for s in control.get("/services") if (s["Spec"].get("Labels") or {}).get(NAMESPACE_LABEL) == name]
    if not services:
        control.get(f"/stacks/{name}")  # "stack NAME not found" when there is no such stack
    return services


@stack.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Only display task IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="desired-state=running|shutdown|accepted")
@click.pass_context
def ps(ctx: click.Context, name: str, quiet: bool, no_trunc: bool, filters: tuple[str, ...]) -> None:
    """List the tasks in the stack."""
    control = client(ctx)
    params = desired_state_params(filters)
    tasks = []
    for service in sorted(_stack_services(control, name), key=lambda s: s["Spec"]["Name"]):
        tasks += control.get("/tasks", params={**params, "service": service["ID"]})
    if not tasks and not quiet:
        click.echo(f"nothing found in stack: {name}", err=True)
        return
    print_tasks(control, tasks, no_trunc=no_trunc, quiet=quiet)


@stack.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.pass_context
def services(ctx: click.Context, name: str, quiet: bool) -> None:
    """List the services in the stack."""
    print_services(sorted(_stack_services(client(ctx), name), key=lambda s: s["Spec"]["Name"]), quiet=quiet)


@stack.command(name="rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def remove(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove one or more stacks."""
    control = client(ctx)
    errors = []
    for name in names:
        try:
            result = control.delete(f"/stacks/{name}")
        except ControlError as exc:  # go on with the other stacks, as Docker does
            errors.append(str(exc))
            continue
        for action in result["Actions"]:
            click.echo(action)
    if errors:
        raise ControlError("\n".join(errors))
