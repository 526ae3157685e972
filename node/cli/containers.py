"""Container commands: create, run, start, stop, restart, kill, pause, unpause, rm, wait, logs, exec, attach,
inspect, ps, top, stats, events, container prune. Flags and exit codes as Docker's CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import struct
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from node.cli.base import CliState, cli, pass_client, print_objects, print_rows
from node.client import EngineClient
from node.errors import Conflict, InvalidArgument, NodeError, NotFound
from node.network.ports import display_ports

_MAX_RETRIES = "MaximumRetryCount"


def _engine_error(exc: NodeError, code: int = 125) -> NodeError:
    exc.exit_code = code  # type: ignore[attr-defined]
    return exc


def _start_error_code(message: str) -> int:
    low = message.lower()
    if "not found" in low or "no such file or directory" in low:
        return 127
    if "permission denied" in low or "exec format error" in low:
        return 126
    return 125


def _size(value: str | None, flag: str) -> int:
    if not value:
        return 0
    from node.containers.options import parse_bytes

    try:
        return parse_bytes(value)
    except InvalidArgument:
        raise _engine_error(InvalidArgument(
            f'invalid argument "{value}" for "{flag}" flag: invalid size: \'{value}\'')) from None


def _duration_ns(value: str | None) -> int:
    if not value:
        return 0
    units = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    total, num = 0.0, ""
    i = 0
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        unit = value[i:i + 2] if value[i:i + 2] in units else value[i]
        if unit not in units or not num:
            raise _engine_error(InvalidArgument(f"invalid duration: {value}"))
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise _engine_error(InvalidArgument(f"invalid duration: {value} (missing unit)"))
    return int(total)


def _restart(value: str | None) -> dict[str, Any]:
    if not value:
        return {"Name": "no", _MAX_RETRIES: 0}
    name, _, count = value.partition(":")
    if count and not count.isdigit():
        raise _engine_error(InvalidArgument("invalid restart policy format: maximum retry count must be an integer"))
    return {"Name": name, _MAX_RETRIES: int(count or 0)}


def _mount_flag(spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if key in ("type",):
            out["Type"] = value
        elif key in ("source", "src"):
            out["Source"] = value
        elif key in ("target", "destination", "dst"):
            out["Target"] = value
        elif key in ("readonly", "ro"):
            out["ReadOnly"] = value.lower() not in ("false", "0") if eq else True
        elif key == "volume-nocopy":
            out.setdefault("VolumeOptions", {})["NoCopy"] = True
        elif key == "tmpfs-size":
            out.setdefault("TmpfsOptions", {})["SizeBytes"] = _size(value, "--mount")
        elif key == "tmpfs-mode":
            out.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        elif key in ("bind-propagation", "consistency", "volume-driver"):
            continue
        else:
            raise _engine_error(InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: "
                                                f"unexpected key '{key}' in '{field}'"))
    return out


def _env(env: tuple[str, ...], env_files: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for path in env_files:
        try:
            lines = open(path).read().splitlines()  # noqa: SIM115
        except OSError as exc:
            raise _engine_error(InvalidArgument(f"open {path}: {exc.strerror}")) from None
        out += [ln for ln in (line.strip() for line in lines) if ln and not ln.startswith("#")]
    out += list(env)
    resolved = []
    for item in out:
        if "=" not in item:
            if item in os.environ:
                resolved.append(f"{item}={os.environ[item]}")
            continue
        resolved.append(item)
    return resolved


_RUN_OPTIONS = [
    click.option("--name"), click.option("-e", "--env", multiple=True), click.option("--env-file", multiple=True),
    click.option("-w", "--workdir"), click.option("-u", "--user"), click.option("--entrypoint"),
    click.option("-h", "--hostname"), click.option("-l", "--label", multiple=True),
    click.option("-v", "--volume", multiple=True), click.option("--mount", multiple=True),
    click.option("--tmpfs", multiple=True), click.option("--read-only", is_flag=True),
    click.option("--restart"), click.option("--rm", "auto_remove", is_flag=True),
    click.option("-i", "--interactive", is_flag=True), click.option("-t", "--tty", is_flag=True),
    click.option("--health-cmd"), click.option("--health-interval"), click.option("--health-timeout"),
    click.option("--health-retries", type=int), click.option("--health-start-period"),
    click.option("--no-healthcheck", is_flag=True), click.option("-m", "--memory"),
    click.option("--memory-swap"), click.option("--cpus"), click.option("--pids-limit", type=int),
    click.option("--cap-add", multiple=True), click.option("--cap-drop", multiple=True),
    click.option("--privileged", is_flag=True), click.option("--init", is_flag=True),
    click.option("--stop-signal"), click.option("--stop-timeout", type=int),
    click.option("--network", "--net", "network", multiple=True), click.option("--runtime"),
    click.option("--log-driver"), click.option("--log-opt", multiple=True),
    click.option("--sysctl", multiple=True),
    click.option("-p", "--publish", multiple=True), click.option("-P", "--publish-all", is_flag=True),
    click.option("--network-alias", multiple=True), click.option("--ip"), click.option("--expose", multiple=True),
    click.option("--add-host", multiple=True),
]


def run_options(fn: Any) -> Any:
    for option in reversed(_RUN_OPTIONS):
        fn = option(fn)
    fn = click.argument("command", nargs=-1, type=click.UNPROCESSED)(fn)
    fn = click.argument("image")(fn)
    return fn


def build_create_body(image: str, command: tuple[str, ...], o: dict[str, Any]) -> dict[str, Any]:
    labels = dict(item.split("=", 1) if "=" in item else (item, "") for item in o["label"])
    tmpfs = {t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "") for t in o["tmpfs"]}
    host_config: dict[str, Any] = {
        "Binds": list(o["volume"]), "Mounts": [_mount_flag(m) for m in o["mount"]], "Tmpfs": tmpfs,
        "ReadonlyRootfs": o["read_only"], "RestartPolicy": _restart(o["restart"]), "AutoRemove": o["auto_remove"],
        "Memory": _size(o["memory"], "-m, --memory"), "CapAdd": list(o["cap_add"]), "CapDrop": list(o["cap_drop"]),
        "Privileged": o["privileged"], "Init": o["init"] or None,
        "NetworkMode": o["network"][0] if o["network"] else "default",
        "Sysctls": dict(s.split("=", 1) for s in o["sysctl"]),
    }
    if o["memory_swap"]:
        host_config["MemorySwap"] = -1 if o["memory_swap"] == "-1" else _size(o["memory_swap"], "--memory-swap")
    if o["cpus"]:
        try:
            host_config["NanoCpus"] = int(float(o["cpus"]) * 1e9)
        except ValueError:
            raise _engine_error(InvalidArgument(f'invalid argument "{o["cpus"]}" for "--cpus" flag')) from None
    if o["pids_limit"] is not None:
        host_config["PidsLimit"] = o["pids_limit"]
    if o["runtime"]:
        host_config["Runtime"] = o["runtime"]
    if o["log_driver"] or o["log_opt"]:
        host_config["LogConfig"] = {"Type": o["log_driver"] or "",
                                    "Config": dict(x.split("=", 1) for x in o["log_opt"])}
    body: dict[str, Any] = {
        "Image": image, "Cmd": list(command) or None, "Env": _env(o["env"], o["env_file"]), "Labels": labels,
        "Tty": o["tty"], "OpenStdin": o["interactive"], "StdinOnce": o["interactive"],
        "AttachStdin": o["interactive"], "HostConfig": host_config,
    }
    _add_networking(body, o)
    for key, flag in (("WorkingDir", "workdir"), ("User", "user"), ("Hostname", "hostname"),
                      ("StopSignal", "stop_signal")):
        if o[flag]:
            body[key] = o[flag]
    if o["stop_timeout"] is not None:
        body["StopTimeout"] = o["stop_timeout"]
    if o["entrypoint"] is not None:
        body["Entrypoint"] = [o["entrypoint"]] if o["entrypoint"] else [""]
    health_flags = ("health_cmd", "health_interval", "health_timeout", "health_retries", "health_start_period")
    if o["no_healthcheck"]:
        if any(o[flag] for flag in health_flags):
            raise _engine_error(InvalidArgument("--no-healthcheck conflicts with --health-* options"))
        body["Healthcheck"] = {"Test": ["NONE"]}
    elif any(o[flag] for flag in health_flags):
        body["Healthcheck"] = {
            "Test": ["CMD-SHELL", o["health_cmd"]] if o["health_cmd"] else [],
            "Interval": _duration_ns(o["health_interval"]), "Timeout": _duration_ns(o["health_timeout"]),
            "Retries": o["health_retries"] or 0, "StartPeriod": _duration_ns(o["health_start_period"]),
        }
    return body


def _add_networking(body: dict[str, Any], o: dict[str, Any]) -> None:
    """-p/-P into PortBindings and ExposedPorts, --add-host into ExtraHosts, --network-alias/--ip into
    NetworkingConfig (as Docker's CLI)."""
    from node.network.ports import expose_of, port_bindings_of

    bindings, exposed = port_bindings_of(o["publish"])
    exposed |= expose_of(o["expose"])
    body["HostConfig"].update(PortBindings=bindings, PublishAllPorts=o["publish_all"], ExtraHosts=list(o["add_host"]))
    if exposed:
        body["ExposedPorts"] = exposed
    # --network again joins more networks at create, as Docker 25's CLI does; --network-alias and --ip are
    # the first network's
    endpoints: dict[str, Any] = {name: {} for name in o["network"][1:]}
    if o["network_alias"] or o["ip"]:
        first = o["network"][0] if o["network"] and o["network"][0] != "default" else "bridge"
        endpoints = {first: {"Aliases": list(o["network_alias"]) or None,
                             "IPAMConfig": {"IPv4Address": o["ip"]} if o["ip"] else None}, **endpoints}
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}


def _create(client: EngineClient, image: str, command: tuple[str, ...], o: dict[str, Any],
            console_size: tuple[int, int] | None = None, detached: bool = False) -> str:
    """With -i the end of the first attached client's input closes the container's stdin (StdinOnce), as
    Docker's CLI sets it, except for `run -d` whose stdin stays open for later `attach`es."""
    try:
        body = build_create_body(image, command, o)
        body["StdinOnce"] = bool(o["interactive"] and not detached)
        if console_size:
            body["HostConfig"]["ConsoleSize"] = list(console_size)
        params = {"name": o["name"]} if o["name"] else {}
        return str(client.post("/containers/create", json=body, params=params)["Id"])
    except NodeError as exc:
        raise _engine_error(exc) from None


@cli.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@run_options
@pass_client
def create(state: CliState, image: str, command: tuple[str, ...], **o: Any) -> None:
    """Create a new container."""
    click.echo(_create(state.client, image, command, o))


@cli.command(context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True)
@click.option("--sig-proxy/--no-sig-proxy", default=True)
@run_options
@pass_client
def run(state: CliState, image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool, **o: Any) -> None:
    """Create and run a new container; in the foreground, exit with the container's code."""
    from node.cli import stdio

    client = state.client
    interactive, tty = o["interactive"], o["tty"]
    if interactive and tty and not detach and not stdio.stdin_is_tty():
        raise _engine_error(InvalidArgument("the input device is not a TTY"), 1)
    cid = _create(client, image, command, o, console_size=stdio.terminal_size() if tty else None,
                  detached=detach)
    if detach:
        _start(client, cid)
        click.echo(cid)
        return
    condition = "removed" if o["auto_remove"] else "next-exit"
    params = {"stream": "1", "stdin": "1" if interactive else "0", "stdout": "1", "stderr": "1"}
    with client.stream("POST", f"/containers/{cid}/wait", params={"condition": condition}) as wait_resp, \
            client.hijack(f"/containers/{cid}/attach", params=params) as conn:
        _start(client, cid, remove_on_failure=o["auto_remove"])
        if _attach_session(client, conn, f"/containers/{cid}/resize", tty=tty, stdin=interactive,
                           kill_path=f"/containers/{cid}/kill" if sig_proxy else None):
            sys.exit(0)
        code = json.loads(wait_resp.read() or b"{}").get("StatusCode", 0)
    sys.exit(code)


def _attach_session(client: EngineClient, conn: Any, resize_path: str, *, tty: bool, stdin: bool,
                    kill_path: str | None = None) -> bool:
    """Our stdio on a hijacked connection until its output ends; True if the user detached (Ctrl-P Ctrl-Q).
    With `kill_path` (a container, no TTY) the signals we get are sent to the container, as Docker's --sig-proxy."""
    from node.cli import stdio

    def resize(height: int, width: int) -> None:
        client.post(resize_path, params={"h": str(height), "w": str(width)})

    def kill(signum: int) -> None:
        client.post(kill_path or "", params={"signal": str(signum)})

    with stdio.raw_terminal(tty and stdin) as raw, stdio.follow_resizes(resize, enabled=tty), \
            stdio.proxy_signals(kill, enabled=kill_path is not None and not tty):
        detached = stdio.Session(conn, tty=tty, stdin=stdin, detach_keys=stdio.DETACH_KEYS if raw else None).run()
    if detached:
        click.echo("read escape sequence", err=True)
    return detached


def _start(client: EngineClient, cid: str, *, remove_on_failure: bool = False) -> None:
    try:
        client.post(f"/containers/{cid}/start")
    except NodeError as exc:
        if remove_on_failure:
            try:
                client.delete(f"/containers/{cid}", params={"force": "1", "v": "1"})
            except NodeError:
                pass
        raise _engine_error(exc, _start_error_code(str(exc))) from None


def _copy_stream(response: Any, *, tty: bool) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    if tty:
        for chunk in response.iter_raw():
            out.write(chunk)
            out.flush()
        return
    buf = b""
    for chunk in response.iter_raw():
        buf += chunk
        while len(buf) >= 8:
            kind, size = struct.unpack(">BxxxL", buf[:8])
            if len(buf) < 8 + size:
                break
            target = err if kind == 2 else out
            target.write(buf[8:8 + size])
            target.flush()
            buf = buf[8 + size:]


def _each(refs: tuple[str, ...], action: Any) -> None:
    failed = None
    for ref in refs:
        try:
            action(ref)
            click.echo(ref)
        except NodeError as exc:
            click.echo(f"Error response from daemon: {exc}", err=True)
            failed = exc
    if failed is not None:
        sys.exit(1)


@cli.command()
@click.option("-a", "--attach", is_flag=True)
@click.option("-i", "--interactive", is_flag=True)
@click.argument("containers", nargs=-1, required=True)
@pass_client
def start(state: CliState, containers: tuple[str, ...], attach: bool, interactive: bool) -> None:
    """Start one or more stopped containers."""
    client = state.client
    if (attach or interactive) and len(containers) == 1:
        info = client.get(f"/containers/{containers[0]}/json")
        cid, tty = info["Id"], info["Config"]["Tty"]
        stdin = interactive and bool(info["Config"].get("OpenStdin"))
        params = {"stream": "1", "stdin": "1" if stdin else "0", "stdout": "1", "stderr": "1"}
        with client.stream("POST", f"/containers/{cid}/wait", params={"condition": "next-exit"}) as w, \
                client.hijack(f"/containers/{cid}/attach", params=params) as conn:
            _start(client, cid)
            if _attach_session(client, conn, f"/containers/{cid}/resize", tty=tty, stdin=stdin,
                               kill_path=f"/containers/{cid}/kill"):
                sys.exit(0)
            sys.exit(json.loads(w.read() or b"{}").get("StatusCode", 0))
    _each(containers, lambda ref: client.post(f"/containers/{ref}/start"))


@cli.command()
@click.option("-t", "--time", "timeout", type=int)
@click.option("-s", "--signal", "sig")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def stop(state: CliState, containers: tuple[str, ...], timeout: int | None, sig: str | None) -> None:
    """Stop one or more running containers."""
    params = {k: v for k, v in (("t", timeout), ("signal", sig)) if v is not None}
    _each(containers, lambda ref: state.client.post(f"/containers/{ref}/stop", params=params))


@cli.command()
@click.option("-t", "--time", "timeout", type=int)
@click.argument("containers", nargs=-1, required=True)
@pass_client
def restart(state: CliState, containers: tuple[str, ...], timeout: int | None) -> None:
    """Restart one or more containers."""
    params = {"t": timeout} if timeout is not None else {}
    _each(containers, lambda ref: state.client.post(f"/containers/{ref}/restart", params=params))


@cli.command()
@click.option("-s", "--signal", "sig", default="KILL")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def kill(state: CliState, containers: tuple[str, ...], sig: str) -> None:
    """Kill one or more running containers."""
    _each(containers, lambda ref: state.client.post(f"/containers/{ref}/kill", params={"signal": sig}))


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def pause(state: CliState, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    _each(containers, lambda ref: state.client.post(f"/containers/{ref}/pause"))


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def unpause(state: CliState, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    _each(containers, lambda ref: state.client.post(f"/containers/{ref}/unpause"))


@cli.command()
@click.option("-f", "--force", is_flag=True)
@click.option("-v", "--volumes", is_flag=True)
@click.argument("containers", nargs=-1, required=True)
@pass_client
def rm(state: CliState, containers: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove one or more containers."""
    params = {"force": "1" if force else "0", "v": "1" if volumes else "0"}
    _each(containers, lambda ref: state.client.delete(f"/containers/{ref}", params=params))


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def wait(state: CliState, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    for ref in containers:
        with state.client.stream("POST", f"/containers/{ref}/wait") as resp:
            body = resp.read()
        if not body.strip():  # the daemon stopped before the container did
            raise NodeError(f"error waiting for container {ref}: the daemon closed the connection")
        click.echo(json.loads(body)["StatusCode"])


def _since(value: str | None, *, flag: str = "since") -> str | None:
    """`--since/--until` as Docker takes them: a Unix timestamp, an RFC 3339 date, or a Go duration before now
    (`10m`, `1h30m`, `0s`). Anything else is refused with the value named."""
    if not value:
        return None
    try:
        return str(float(value))
    except ValueError:
        pass
    if re.fullmatch(r"(\d+(\.\d*)?(ns|us|ms|s|m|h))+", value):
        return str(time.time() - _duration_ns(value) / 1e9)
    try:
        return str(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise InvalidArgument(
            f'invalid value for "{flag}": failed to parse value as time or duration: "{value}"') from None


def _rfc3339_nano(ns: int) -> str:
    """An event's time as Docker prints it (Go's RFC3339Nano in local time: trailing zeros dropped, `Z` for UTC)."""
    local = datetime.fromtimestamp(ns // 1_000_000_000, UTC).astimezone()
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    offset = local.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + zone


@cli.command()
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all")
@click.option("--since")
@click.option("--until")
@click.option("-t", "--timestamps", is_flag=True)
@click.argument("container")
@pass_client
def logs(state: CliState, container: str, follow: bool, tail: str, since: str | None, until: str | None,
         timestamps: bool) -> None:
    """Fetch the logs of a container."""
    info = state.client.get(f"/containers/{container}/json")
    params = {"stdout": "1", "stderr": "1", "follow": "1" if follow else "0", "tail": tail,
              "timestamps": "1" if timestamps else "0"}
    for key, value in (("since", _since(since)), ("until", _since(until, flag="until"))):
        if value:
            params[key] = value
    with state.client.stream("GET", f"/containers/{info['Id']}/logs", params=params) as resp:
        _copy_stream(resp, tty=info["Config"]["Tty"])


@cli.command()
@click.option("--no-stdin", is_flag=True)
@click.option("--sig-proxy/--no-sig-proxy", default=True)
@click.argument("container")
@pass_client
def attach(state: CliState, container: str, no_stdin: bool, sig_proxy: bool) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from node.cli import stdio

    client = state.client
    info = client.get(f"/containers/{container}/json")
    cid, tty = info["Id"], info["Config"]["Tty"]
    if not info["State"]["Running"]:
        raise _engine_error(Conflict("You cannot attach to a stopped container, start it first"), 1)
    stdin = not no_stdin and bool(info["Config"].get("OpenStdin"))
    if stdin and tty and not stdio.stdin_is_tty():
        raise _engine_error(InvalidArgument("the input device is not a TTY"), 1)
    params = {"stream": "1", "stdin": "1" if stdin else "0", "stdout": "1", "stderr": "1"}
    with client.hijack(f"/containers/{cid}/attach", params=params) as conn:
        if _attach_session(client, conn, f"/containers/{cid}/resize", tty=tty, stdin=stdin,
                           kill_path=f"/containers/{cid}/kill" if sig_proxy else None):
            sys.exit(0)
    with client.stream("POST", f"/containers/{cid}/wait", params={"condition": "not-running"}) as w:
        sys.exit(json.loads(w.read() or b"{}").get("StatusCode", 0))


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.option("-d", "--detach", is_flag=True)
@click.option("-e", "--env", multiple=True)
@click.option("-u", "--user")
@click.option("-w", "--workdir")
@click.option("--privileged", is_flag=True)
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_client
def exec_(state: CliState, container: str, command: tuple[str, ...], interactive: bool, tty: bool, detach: bool,
          env: tuple[str, ...], user: str | None, workdir: str | None, privileged: bool) -> None:
    """Execute a command in a running container."""
    from node.cli import stdio

    client = state.client
    if interactive and tty and not detach and not stdio.stdin_is_tty():
        raise _engine_error(InvalidArgument("the input device is not a TTY"), 1)
    body = {"Cmd": list(command), "Env": list(env), "User": user or "", "WorkingDir": workdir or "",
            "Tty": tty, "AttachStdin": interactive and not detach, "AttachStdout": not detach,
            "AttachStderr": not detach, "Privileged": privileged}
    eid = client.post(f"/containers/{container}/exec", json=body)["Id"]
    if detach:
        client.post(f"/exec/{eid}/start", json={"Detach": True})
        return
    start_body: dict[str, Any] = {"Detach": False, "Tty": tty}
    size = stdio.terminal_size() if tty else None
    if size:
        start_body["ConsoleSize"] = list(size)
    with client.hijack(f"/exec/{eid}/start", json_body=start_body) as conn:
        if _attach_session(client, conn, f"/exec/{eid}/resize", tty=tty, stdin=interactive):
            sys.exit(0)
    code = client.get(f"/exec/{eid}/json")["ExitCode"]
    sys.exit(code or 0)


@cli.command()
@click.option("-f", "--format", "fmt")
@click.option("-s", "--size", is_flag=True)
@click.option("--type", "kind", type=click.Choice(["container", "image", "volume", "network"]))
@click.argument("names", nargs=-1, required=True)
@pass_client
def inspect(state: CliState, names: tuple[str, ...], fmt: str | None, size: bool, kind: str | None) -> None:
    """Return low-level information on containers, images, volumes or networks."""
    paths = {"container": "/containers/{}/json", "image": "/images/{}/json", "volume": "/volumes/{}",
             "network": "/networks/{}"}
    order = [kind] if kind else ["container", "image", "volume", "network"]
    objects, missing = [], None
    for name in names:
        for k in order:
            try:
                objects.append(state.client.get(paths[k].format(name), params={"size": "1"} if size else {}))
                break
            except NotFound:
                continue
        else:
            missing = name
    if objects:
        print_objects(objects, fmt=fmt)
    if missing:
        click.echo(f"Error: No such object: {missing}", err=True)
        sys.exit(1)


def _ago(unix: float) -> str:
    from node.containers.model import human_duration

    return f"{human_duration(time.time() - unix)} ago"


def ps_row(c: dict[str, Any], *, no_trunc: bool) -> dict[str, Any]:
    command = c["Command"] if no_trunc else _trunc(c["Command"], 20)
    return {
        "ID": c["Id"] if no_trunc else c["Id"][:12], "Image": c["Image"],
        "Command": json.dumps(command, ensure_ascii=False),
        "CreatedAt": datetime.fromtimestamp(c["Created"], UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
        "RunningFor": _ago(c["Created"]), "Ports": display_ports(c.get("Ports") or []), "State": c["State"],
        "Status": c["Status"],
        "Names": ",".join(n.lstrip("/") for n in c["Names"]),
        "Labels": ",".join(f"{k}={v}" for k, v in (c.get("Labels") or {}).items()),
        "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []),
        "Networks": ",".join((c.get("NetworkSettings") or {}).get("Networks") or {})
        or c["HostConfig"]["NetworkMode"], "Size": "",
    }


def _trunc(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


_PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
               "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Names": "NAMES",
               "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "Size": "SIZE"}
_PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def _filter_param(filters: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, dict[str, bool]] = {}
    for f in filters:
        key, _, value = f.partition("=")
        out.setdefault(key, {})[value] = True
    return {"filters": json.dumps(out)} if out else {}


@cli.command()
@click.option("-a", "--all", "all_", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("-f", "--filter", "filters", multiple=True)
@click.option("--format", "fmt")
@click.option("--no-trunc", is_flag=True)
@click.option("-n", "--last", type=int, default=-1)
@click.option("-l", "--latest", is_flag=True)
@click.option("-s", "--size", is_flag=True)
@pass_client
def ps(state: CliState, all_: bool, quiet: bool, filters: tuple[str, ...], fmt: str | None, no_trunc: bool,
       last: int, latest: bool, size: bool) -> None:
    """List containers."""
    params = {"all": "1" if all_ or last > 0 or latest else "0", **_filter_param(filters)}
    if latest:
        params["limit"] = "1"
    elif last > 0:
        params["limit"] = str(last)
    rows = [ps_row(c, no_trunc=no_trunc) for c in state.client.get("/containers/json", params=params)]
    print_rows(rows, fmt=fmt, default=_PS_DEFAULT, headers=_PS_HEADERS, quiet=quiet)


@cli.command()
@click.argument("container")
@click.argument("private_port", required=False)
@pass_client
def port(state: CliState, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    info = state.client.get(f"/containers/{container}/json")
    published = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port is not None:
        number, _, proto = private_port.partition("/")
        key = f"{number}/{proto or 'tcp'}"
        if not published.get(key):
            raise NodeError(f"No public port '{key}' published for {container}")
        lines = [f"{b['HostIp']}:{b['HostPort']}" for b in published[key]]
    else:
        lines = [f"{key} -> {b['HostIp']}:{b['HostPort']}" for key, binds in published.items() for b in binds or ()]
    for line in sorted(lines, key=_natural):
        click.echo(line)


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@cli.command()
@click.argument("container")
@click.argument("ps_args", nargs=-1)
@pass_client
def top(state: CliState, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    from node.cli.base import print_table

    data = state.client.get(f"/containers/{container}/top")
    print_table(data["Titles"], data["Processes"])


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"


@cli.command()
@click.option("--no-stream", is_flag=True)
@click.option("-a", "--all", "all_", is_flag=True)
@click.option("--format", "fmt")
@click.option("--no-trunc", is_flag=True)
@click.argument("containers", nargs=-1)
@pass_client
def stats(state: CliState, containers: tuple[str, ...], no_stream: bool, all_: bool, fmt: str | None,
          no_trunc: bool) -> None:
    """Display a snapshot of containers' resource usage (cgroups)."""
    client = state.client
    refs = list(containers) or [c["Id"] for c in client.get("/containers/json", params={"all": "1" if all_ else "0"})]
    rows = []
    for ref in refs:
        s = client.get(f"/containers/{ref}/stats", params={"stream": "0"})
        time.sleep(0) if no_stream else None
        mem, limit = s["memory_stats"]["usage"], s["memory_stats"]["limit"] or 1
        cpu_ns = s["cpu_stats"]["cpu_usage"]["total_usage"]
        rows.append({
            "ID": s["id"] if no_trunc else s["id"][:12], "Container": s["id"][:12], "Name": s["name"].lstrip("/"),
            "CPUPerc": f"{_cpu_percent(ref, client, cpu_ns):.2f}%",
            "MemUsage": f"{_human(mem)} / {_human(limit)}", "MemPerc": f"{100 * mem / limit:.2f}%",
            "NetIO": _net_io(s.get("networks") or {}), "BlockIO": "0B / 0B",
            "PIDs": str(s["pids_stats"]["current"]),
        })
    headers = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
               "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
               "PIDs": "PIDS"}
    default = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
    print_rows(rows, fmt=fmt, default=default, headers=headers)


def _net_io(networks: dict[str, dict[str, int]]) -> str:
    """Docker's NET I/O: bytes received / sent over every interface, in decimal units (`1.45kB / 648B`)."""
    from node.cli.images import human_size

    rx = sum(int(n.get("rx_bytes") or 0) for n in networks.values())
    tx = sum(int(n.get("tx_bytes") or 0) for n in networks.values())
    return f"{human_size(rx)} / {human_size(tx)}"


def _cpu_percent(ref: str, client: EngineClient, first_ns: int) -> float:
    t0 = time.monotonic()
    time.sleep(0.2)
    s = client.get(f"/containers/{ref}/stats", params={"stream": "0"})
    delta = s["cpu_stats"]["cpu_usage"]["total_usage"] - first_ns
    return max(delta, 0) / ((time.monotonic() - t0) * 1e9) * 100


@cli.command()
@click.option("--since")
@click.option("--until")
@click.option("-f", "--filter", "filters", multiple=True)
@click.option("--format", "fmt")
@pass_client
def events(state: CliState, since: str | None, until: str | None, filters: tuple[str, ...], fmt: str | None) -> None:
    """Get real-time events from the engine."""
    from node.cli.gotemplate import render

    params = {k: v for k, v in (("since", _since(since)), ("until", _since(until, flag="until"))) if v}
    params.update(_filter_param(filters))
    with state.client.stream("GET", "/events", params=params) as resp:
        for line in resp.iter_lines():
            if not line.strip():
                continue
            e = json.loads(line)
            if fmt == "json":
                click.echo(json.dumps(e))
            elif fmt:
                click.echo(render(fmt, e))
            else:
                attrs = ", ".join(f"{k}={v}" for k, v in sorted(e["Actor"]["Attributes"].items()))
                click.echo(f"{_rfc3339_nano(e['timeNano'])} {e['Type']} {e['Action']} {e['id']} ({attrs})")


@cli.group()
def container() -> None:
    """Manage containers."""


@container.command("prune")
@click.option("-f", "--force", is_flag=True)
@pass_client
def container_prune(state: CliState, force: bool) -> None:
    """Remove all stopped containers."""
    if not force and not click.confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to "
                                       "continue?"):
        return
    result = state.client.post("/containers/prune")
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        click.echo("Deleted Containers:")
        for cid in deleted:
            click.echo(cid)
    click.echo(f"Total reclaimed space: {result.get('SpaceReclaimed', 0)}B")


for _name, _cmd in (("ls", ps), ("ps", ps), ("run", run), ("create", create), ("start", start), ("stop", stop),
                    ("rm", rm), ("logs", logs), ("inspect", inspect), ("kill", kill), ("restart", restart),
                    ("exec", exec_), ("wait", wait), ("top", top), ("stats", stats), ("pause", pause),
                    ("unpause", unpause), ("attach", attach), ("port", port)):
    container.add_command(_cmd, _name)

_ = shlex
