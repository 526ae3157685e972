"""exec and run: a command in a service's running container, or in a new one-off container."""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Any

import click

from compose.apply import Applier, ApplyError, ApplyOptions, observe_project
from compose.cli import global_options, load_from_context, main
from compose.cli.logstream import demux
from compose.cli.progress import make_progress
from compose.cli.session import container_summary, engine_client, make_backend, run
from compose.container_spec import CreateOptions, container_create_body, secondary_networks
from compose.errors import ComposeError
from compose.planner import (
    NUMBER_LABEL,
    ONEOFF_LABEL,
    SERVICE_LABEL,
    CreateContainer,
    UpOptions,
    container_labels,
    plan_up,
)
from node.client import EngineClient
from node.errors import NodeError


def _env_list(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


def _copy_output(response: Any, *, tty: bool) -> None:
    for kind, payload in demux(response.iter_raw(), tty=tty):
        target = sys.stderr.buffer if kind == 2 else sys.stdout.buffer
        target.write(payload)
        target.flush()


def _stdin_data(interactive: bool) -> bytes | None:
    """Piped input goes to the command (`exec -T db psql < dump.sql`); a terminal is not read."""
    if not interactive or sys.stdin is None or sys.stdin.isatty():
        return None
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError):
        return None


@main.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("-u", "--user", help="Run the command as this user.")
@click.option("-w", "--workdir", help="Path to workdir directory for this command.")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True, help="Disable pseudo-TTY allocation.")
@click.option("-i", "--interactive", is_flag=True, default=True, hidden=True)
@click.option("--privileged", is_flag=True, help="Give extended privileges to the process.")
@click.option("--index", type=int, default=1, help="Index of the container if service has multiple replicas.")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_command(ctx: click.Context, detach: bool, env: tuple[str, ...], user: str | None, workdir: str | None,
                 no_tty: bool, interactive: bool, privileged: bool, index: int, service: str,
                 command: tuple[str, ...]) -> None:
    """Execute a command in a running container."""
    project = load_from_context(ctx, services=[service], from_labels=True)
    if service not in project.services:
        raise ComposeError(f"no such service: {service}")
    client = engine_client(ctx)
    container = _find_running(client, project.name, service, index)
    tty = not no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    body = {"Cmd": list(command), "Env": [f"{k}={v}" for k, v in _env_list(env).items()], "User": user or "",
            "WorkingDir": workdir or "", "Tty": tty, "AttachStdin": not detach,
            "AttachStdout": not detach, "AttachStderr": not detach, "Privileged": privileged}
    try:
        eid = client.post(f"/containers/{container}/exec", json=body)["Id"]
        if detach:
            client.post(f"/exec/{eid}/start", json={"Detach": True})
            return
        if tty:
            _exec_on_terminal(client, eid)
            code = client.get(f"/exec/{eid}/json").get("ExitCode")
            sys.exit(code or 0)
        data = _stdin_data(interactive)
        if data is not None:
            stream = client.stream("POST", f"/exec/{eid}/start", params={"stdin": "1"}, content=data)
        else:
            stream = client.stream("POST", f"/exec/{eid}/start", json={"Detach": False, "Tty": tty})
        with stream as response:
            _copy_output(response, tty=tty)
        code = client.get(f"/exec/{eid}/json").get("ExitCode")
    except NodeError as exc:
        raise ComposeError(str(exc)) from None
    sys.exit(code or 0)


def _exec_on_terminal(client: EngineClient, eid: str) -> None:
    """An interactive exec on our terminal: raw mode, resizes followed, over a hijacked connection."""
    from node.cli import stdio

    def resize(height: int, width: int) -> None:
        client.post(f"/exec/{eid}/resize", params={"h": str(height), "w": str(width)})

    body: dict[str, Any] = {"Detach": False, "Tty": True}
    size = stdio.terminal_size()
    if size:
        body["ConsoleSize"] = list(size)
    with client.hijack(f"/exec/{eid}/start", json_body=body) as conn, stdio.raw_terminal(True), \
            stdio.follow_resizes(resize, enabled=True):
        stdio.Session(conn, tty=True, stdin=True).run()


def _find_running(client: EngineClient, project: str, service: str, index: int) -> str:
    for c in container_summary(client, project):
        labels = c.get("Labels") or {}
        if labels.get(SERVICE_LABEL) == service and labels.get(ONEOFF_LABEL) != "True" \
                and labels.get(NUMBER_LABEL) == str(index):
            if c.get("State") == "running":
                return str(c["Id"])
    # compose's words: the index is named only when one other than the first was asked for
    raise ComposeError(f"service \"{service}\" is not running" + (f" container #{index}" if index > 1 else ""))


def _publish(values: tuple[str, ...]) -> dict[str, list[dict[str, str]]]:
    """`-p [ip:]host:container[/proto]` as PortBindings."""
    out: dict[str, list[dict[str, str]]] = {}
    for value in values:
        spec, _, protocol = value.partition("/")
        parts = spec.split(":")
        if len(parts) == 1:
            host_ip, host, target = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, host, target = "", parts[0], parts[1]
        else:
            host_ip, host, target = parts[0], parts[1], parts[2]
        out.setdefault(f"{target}/{protocol or 'tcp'}", []).append({"HostIp": host_ip, "HostPort": host})
    return out


@main.command("run", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--rm", "remove", is_flag=True, help="Automatically remove the container when it exits.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("-l", "--label", multiple=True, help="Add or override a label.")
@click.option("--name", help="Assign a name to the container.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True, help="Disable pseudo-TTY allocation.")
@click.option("--entrypoint", help="Override the entrypoint of the image.")
@click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host.")
@click.option("-P", "--service-ports", is_flag=True, help="Run with the service's ports enabled and mapped.")
@click.option("-u", "--user", help="Run as specified username or uid.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-i", "--interactive", is_flag=True, default=True, hidden=True)
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_command(ctx: click.Context, detach: bool, remove: bool, env: tuple[str, ...], label: tuple[str, ...],
                name: str | None, no_deps: bool, no_tty: bool, entrypoint: str | None, publish: tuple[str, ...],
                service_ports: bool, user: str | None, workdir: str | None, interactive: bool, service: str,
                command: tuple[str, ...]) -> None:
    """Run a one-off command on a service."""
    project = load_from_context(ctx, services=[service])
    if service not in project.services:
        raise ComposeError(f"no such service: {service}")
    svc = project.services[service]
    client = engine_client(ctx)
    container_name = name or f"{project.name}-{service}-run-{secrets.token_hex(6)}"
    labels = {**container_labels(project, svc, number=1, oneoff=True),
              **dict(item.partition("=")[::2] for item in label)}
    tty = not no_tty and not detach and sys.stdin.isatty() and sys.stdout.isatty()

    async def prepare() -> str:
        backend = make_backend(ctx, client)
        try:
            applier = Applier(project, backend, options=ApplyOptions(environ=dict(os.environ)))
            deps = [d for d in svc.depends_on if d in project.services] if not no_deps else []
            observed = await observe_project(backend, project.name)
            networks = {n["Name"] for n in await backend.list_networks(project.name)}
            volumes = {v["Name"] for v in await backend.list_volumes(project.name)}
            actions = plan_up(project, observed=observed, options=UpOptions(no_deps=no_deps, no_recreate=True),
                              services=deps, existing_networks=networks, existing_volumes=volumes)
            if not deps:  # still the service's own networks and volumes
                actions = [a for a in plan_up(project, observed=observed, options=UpOptions(no_deps=True),
                                              services=[service], existing_networks=networks,
                                              existing_volumes=volumes) if a.level == 0]
            with make_progress(global_options(ctx).progress, "Running") as progress:
                applier.progress = progress
                await applier.up(actions, services=deps)
                for dep, dependency in svc.depends_on.items():
                    if dep in deps:
                        await applier.wait_condition(dep, dependency.condition)
            await applier.ensure_images([CreateContainer(level=1, service=service, number=1, name=container_name,
                                                         labels=labels)])
            applier.write_file_sources([service])
            options = CreateOptions(
                name=container_name, labels=labels, secret_paths=applier.secret_paths,
                command=command if command else None,
                entrypoint=tuple(entrypoint.split()) if entrypoint is not None else None,
                environment=_env_list(env), tty=tty, stdin_open=not detach, ports=service_ports,
                extra_port_bindings=_publish(publish), user=user, working_dir=workdir)
            body = container_create_body(project, svc, options, environ=dict(os.environ))
            cid = await backend.create_container(container_name, body)
            for network, endpoint in secondary_networks(project, svc):
                await backend.connect_network(network, cid, endpoint)
            return cid
        finally:
            backend.close()

    try:
        cid = run(prepare())
    except ApplyError as exc:
        raise ComposeError(str(exc)) from None
    try:
        if detach:
            client.post(f"/containers/{cid}/start")
            click.echo(container_name)
            return
        code = _run_attached(client, cid, tty=tty)
    except NodeError as exc:
        raise ComposeError(str(exc)) from None
    finally:
        if remove and not detach:
            try:
                client.delete(f"/containers/{cid}", params={"force": "1", "v": "1"})
            except NodeError:
                pass
    sys.exit(code)


def _run_attached(client: EngineClient, cid: str, *, tty: bool) -> int:
    with client.stream("POST", f"/containers/{cid}/wait", params={"condition": "next-exit"}) as wait_resp, \
            client.stream("POST", f"/containers/{cid}/attach",
                          params={"stream": "1", "stdout": "1", "stderr": "1"}) as attach_resp:
        client.post(f"/containers/{cid}/start")
        _copy_output(attach_resp, tty=tty)
        return int(json.loads(wait_resp.read() or b"{}").get("StatusCode", 0))
