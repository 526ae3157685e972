"""`pynode daemon`, `version`, `info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from node.cli.base import CliState, cli, pass_client
from node.cli.gotemplate import render
from node.config import DEFAULT_CONFIG_FILE, build_config
from node.version import API_VERSION, ENGINE_VERSION


@cli.command()
@click.option("-H", "--host", "daemon_host", metavar="URL",
              help="Socket to serve the API on (unix:///run/pynode/pynode.sock), as dockerd's -H.")
@click.option("--data-root", type=click.Path(path_type=Path), help="Root of persistent state (/var/lib/pynode).")
@click.option("--exec-root", type=click.Path(path_type=Path), help="Root of runtime state (/run/pynode).")
@click.option("--pidfile", "-p", type=click.Path(path_type=Path), help="Pid file (<exec-root>/pynode.pid).")
@click.option("--config-file", type=click.Path(path_type=Path), default=DEFAULT_CONFIG_FILE, show_default=True)
@click.option("--default-runtime", help="OCI runtime for new containers (crun, runc).")
@click.option("--bip", help="CIDR of the default bridge network.")
@click.option("--nft-table", help="Name of the engine's own nftables table (pynode).")
@click.option("-D", "--debug", is_flag=True, default=None, help="Debug logging.")
@click.pass_context
def daemon(ctx: click.Context, config_file: Path, daemon_host: str | None, **flags: Any) -> None:
    """Run the engine daemon in the foreground (stops cleanly on SIGTERM)."""
    from node.daemon import run_daemon  # the daemon's imports (uvicorn, drivers) stay off the client path

    state: CliState = ctx.find_object(CliState)  # type: ignore[assignment]
    overrides = dict(flags)
    if daemon_host or state.host:
        overrides["host"] = daemon_host or state.host
    run_daemon(build_config(config_file=config_file, overrides=overrides))


@cli.command()
@click.option("-f", "--format", "fmt", help="Format with a Go template, or 'json'.")
@pass_client
def version(state: CliState, fmt: str | None) -> None:
    """Show the client and engine versions."""
    client_part = {"Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "Os": "linux"}
    server = state.client.get("/version")
    data = {"Client": client_part, "Server": server}
    if fmt == "json":
        click.echo(json.dumps(data))
        return
    if fmt:
        click.echo(render(fmt, data))
        return
    click.echo(f"Client:\n Version:       {ENGINE_VERSION}\n API version:   {API_VERSION}\n")
    click.echo(
        f"Server: pynode Engine\n Engine:\n  Version:      {server['Version']}\n"
        f"  API version:  {server['ApiVersion']} (minimum version {server['MinAPIVersion']})\n"
        f"  Python:       {server['GoVersion']}\n  OS/Arch:      {server['Os']}/{server['Arch']}\n"
        f"  Kernel:       {server['KernelVersion']}"
    )


@cli.command()
@click.option("-f", "--format", "fmt", help="Format with a Go template, or 'json'.")
@pass_client
def info(state: CliState, fmt: str | None) -> None:
    """Show engine-wide information."""
    data = state.client.get("/info")
    if fmt == "json":
        click.echo(json.dumps(data))
        return
    if fmt:
        click.echo(render(fmt, data))
        return
    swarm = data.get("Swarm", {})
    lines = [
        f"Containers: {data['Containers']}",
        f" Running: {data['ContainersRunning']}",
        f" Paused: {data['ContainersPaused']}",
        f" Stopped: {data['ContainersStopped']}",
        f"Images: {data['Images']}",
        f"Server Version: {ENGINE_VERSION}",
        f"Storage Driver: {data['Driver']}",
    ]
    lines += [f" {name}: {value}" for name, value in data.get("DriverStatus", [])]
    lines += [
        f"Logging Driver: {data['LoggingDriver']}",
        f"Cgroup Driver: {data['CgroupDriver']}",
        f"Cgroup Version: {data['CgroupVersion']}",
        f"Runtimes: {' '.join(sorted(data.get('Runtimes', {})))}",
        f"Default Runtime: {data['DefaultRuntime']}",
        f"Swarm: {swarm.get('LocalNodeState', 'inactive')}",
    ]
    if swarm.get("NodeID"):
        lines += [f" NodeID: {swarm['NodeID']}", f" Is Manager: {str(swarm.get('ControlAvailable')).lower()}"]
    lines += [
        f"Kernel Version: {data['KernelVersion']}",
        f"Operating System: {data['OperatingSystem']}",
        f"Architecture: {data['Architecture']}",
        f"CPUs: {data['NCPU']}",
        f"Total Memory: {data['MemTotal'] / (1 << 30):.2f}GiB",
        f"Name: {data['Name']}",
        f"Docker Root Dir: {data['DockerRootDir']}",
        f"Live Restore Enabled: {str(data['LiveRestoreEnabled']).lower()}",
    ]
    click.echo("\n".join(lines))
