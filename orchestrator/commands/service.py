"""`pyswarm service create|ls|ps|inspect|scale|update|rollback|rm`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click

from orchestrator.client import ControlClient, ControlError
from orchestrator.commands.common import (
    client,
    key_values,
    parse_bytes,
    parse_cpus,
    parse_duration,
    since,
    table,
)
from orchestrator.model import (
    ContainerSpec,
    EndpointMode,
    EndpointSpec,
    FailureAction,
    FileReference,
    HealthConfig,
    Mount,
    MountType,
    NetworkAttachmentConfig,
    PlacementPreference,
    PortConfig,
    PortProtocol,
    PublishMode,
    ResourceRequirements,
    RestartCondition,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    UpdateOrder,
    from_dict,
    to_dict,
)


@click.group()
def service() -> None:
    """Manage swarm services."""


def parse_publish(text: str) -> PortConfig:
    """`8080:80`, `8080:80/udp` or `mode=host,target=80,published=8080,protocol=tcp`."""
    if "=" in text:
        fields = key_values(tuple(text.split(",")), "publish option")
        unknown = set(fields) - {"mode", "target", "published", "protocol"}
        if unknown or "target" not in fields:
            raise click.BadParameter(f"invalid publish {text!r}: use mode=,target=,published=,protocol=")
        return PortConfig(target_port=int(fields["target"]), published_port=int(fields.get("published") or 0),
                          protocol=PortProtocol(fields.get("protocol", "tcp")),
                          publish_mode=PublishMode(fields.get("mode", "ingress")))
    ports, _, proto = text.partition("/")
    published, _, target = ports.rpartition(":")
    try:
        return PortConfig(target_port=int(target), published_port=int(published or 0),
                          protocol=PortProtocol(proto or "tcp"))
    except ValueError:
        raise click.BadParameter(f"invalid publish {text!r}: expected PUBLISHED:TARGET[/PROTO]") from None


def parse_mount(text: str) -> Mount:
    fields = key_values(tuple(text.split(",")), "mount option")
    kind = fields.get("type", "volume")
    target = fields.get("target") or fields.get("destination") or fields.get("dst")
    if not target:
        raise click.BadParameter(f"invalid mount {text!r}: target is required")
    try:
        return Mount(type=MountType(kind), source=fields.get("source") or fields.get("src", ""), target=target,
                     read_only="readonly" in fields or fields.get("ro") in ("", "true", "1"))
    except ValueError:
        raise click.BadParameter(f"invalid mount type {kind!r}: use bind, volume or tmpfs") from None


def parse_network(text: str) -> NetworkAttachmentConfig:
    """`NAME` or `name=NAME,alias=A[,alias=B]` (Docker's --network)."""
    if "=" not in text:
        return NetworkAttachmentConfig(target=text)
    target, aliases = "", []
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key in ("name", "target"):
            target = value
        elif key == "alias":
            aliases.append(value)
        else:
            raise click.BadParameter(f"invalid network {text!r}: use name=NETWORK,alias=ALIAS")
    if not target:
        raise click.BadParameter(f"invalid network {text!r}: the name is missing")
    return NetworkAttachmentConfig(target=target, aliases=tuple(aliases))


def parse_file_ref(text: str, *, what: str) -> FileReference:
    """`NAME` or `source=NAME,target=PATH,uid=0,gid=0,mode=0444` (Docker's --secret / --config)."""
    if "=" not in text:
        return FileReference(name=text, target=text if what == "secret" else f"/{text}")
    fields = key_values(tuple(text.split(",")), f"{what} option")
    unknown = set(fields) - {"source", "src", "target", "uid", "gid", "mode"}
    name = fields.get("source") or fields.get("src") or ""
    if unknown or not name:
        raise click.BadParameter(f"invalid {what} {text!r}: use source=NAME,target=PATH,uid=,gid=,mode=")
    target = fields.get("target") or (name if what == "secret" else f"/{name}")
    try:
        mode = int(fields.get("mode", "0444"), 8)
    except ValueError:
        raise click.BadParameter(f"invalid {what} mode {fields['mode']!r}: an octal mode such as 0440") from None
    return FileReference(name=name, target=target, uid=fields.get("uid", "0"), gid=fields.get("gid", "0"), mode=mode)


def _spec_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--constraint", multiple=True, help="Placement constraint (node.role==manager, ...)."),
        click.option("--placement-pref", multiple=True, help="Placement preference (spread=node.labels.zone)."),
        click.option("-p", "--publish", multiple=True, help="Publish a port (mode=host,target=80,published=8080)."),
        click.option("--mount", multiple=True, help="Attach a mount (type=volume,source=data,target=/data)."),
        click.option("-l", "--label", multiple=True, help="Service label (key=value)."),
        click.option("--container-label", multiple=True, help="Container label (key=value)."),
        click.option("--reserve-memory"), click.option("--reserve-cpu"),
        click.option("--limit-memory"), click.option("--limit-cpu"),
        click.option("--restart-condition", type=click.Choice(["none", "on-failure", "any"])),
        click.option("--restart-delay"), click.option("--restart-max-attempts", type=int),
        click.option("--restart-window"),
        click.option("--update-parallelism", type=int), click.option("--update-delay"),
        click.option("--update-failure-action", type=click.Choice(["pause", "continue", "rollback"])),
        click.option("--update-order", type=click.Choice(["stop-first", "start-first"])),
        click.option("--update-monitor"),
        click.option("--rollback-parallelism", type=int), click.option("--rollback-delay"),
        click.option("--stop-grace-period"),
        click.option("--hostname"), click.option("-u", "--user"), click.option("-w", "--workdir"),
        click.option("--entrypoint", help="Overwrite the image's entrypoint."),
        click.option("--health-cmd", help="Command to run to check health."),
        click.option("--health-interval", help="Time between running the check (e.g. 5s)."),
        click.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
        click.option("--health-timeout", help="Maximum time to allow one check to run."),
        click.option("--health-start-period", help="Start period before failures count."),
        click.option("-d", "--detach", is_flag=True, help="Return at once (always the case here)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def apply_options(spec: ServiceSpec, opts: dict[str, Any]) -> ServiceSpec:  # noqa: C901 - one line per option
    task, container = spec.task, spec.task.container
    if opts.get("constraint"):
        task = dataclasses.replace(task, placement=dataclasses.replace(task.placement,
                                                                       constraints=tuple(opts["constraint"])))
    if opts.get("placement_pref"):
        prefs = []
        for pref in opts["placement_pref"]:
            kind, _, key = pref.partition("=")
            if kind != "spread" or not key:
                raise click.BadParameter(f"invalid placement preference {pref!r}: use spread=node.labels.KEY")
            prefs.append(PlacementPreference(spread=key))
        task = dataclasses.replace(task, placement=dataclasses.replace(task.placement, preferences=tuple(prefs)))
    if opts.get("publish"):
        spec = dataclasses.replace(spec, endpoint=EndpointSpec(ports=tuple(parse_publish(p) for p in opts["publish"])))
    if opts.get("mount"):
        container = dataclasses.replace(container, mounts=tuple(parse_mount(m) for m in opts["mount"]))
    if opts.get("label"):
        spec = dataclasses.replace(spec, labels={**spec.labels, **key_values(opts["label"], "label")})
    if opts.get("container_label"):
        container = dataclasses.replace(container, labels={**container.labels,
                                                           **key_values(opts["container_label"], "label")})
    resources = task.resources
    limits, reservations = resources.limits, resources.reservations
    if opts.get("reserve_memory"):
        reservations = dataclasses.replace(reservations, memory_bytes=parse_bytes(opts["reserve_memory"]))
    if opts.get("reserve_cpu"):
        reservations = dataclasses.replace(reservations, nano_cpus=parse_cpus(opts["reserve_cpu"]))
    if opts.get("limit_memory"):
        limits = dataclasses.replace(limits, memory_bytes=parse_bytes(opts["limit_memory"]))
    if opts.get("limit_cpu"):
        limits = dataclasses.replace(limits, nano_cpus=parse_cpus(opts["limit_cpu"]))
    task = dataclasses.replace(task, resources=ResourceRequirements(limits=limits, reservations=reservations))
    restart = task.restart_policy
    if opts.get("restart_condition"):
        restart = dataclasses.replace(restart, condition=RestartCondition(opts["restart_condition"].replace("-", "_")))
    if opts.get("restart_delay"):
        restart = dataclasses.replace(restart, delay=parse_duration(opts["restart_delay"]))
    if opts.get("restart_max_attempts") is not None:
        restart = dataclasses.replace(restart, max_attempts=opts["restart_max_attempts"])
    if opts.get("restart_window"):
        restart = dataclasses.replace(restart, window=parse_duration(opts["restart_window"]))
    task = dataclasses.replace(task, restart_policy=restart)
    update, rollback = spec.update_config, spec.rollback_config
    if opts.get("update_parallelism") is not None:
        update = dataclasses.replace(update, parallelism=opts["update_parallelism"])
    if opts.get("update_delay"):
        update = dataclasses.replace(update, delay=parse_duration(opts["update_delay"]))
    if opts.get("update_failure_action"):
        update = dataclasses.replace(update, failure_action=FailureAction(opts["update_failure_action"]))
    if opts.get("update_order"):
        update = dataclasses.replace(update, order=UpdateOrder(opts["update_order"].replace("-", "_")))
    if opts.get("update_monitor"):
        update = dataclasses.replace(update, monitor=parse_duration(opts["update_monitor"]))
    if opts.get("rollback_parallelism") is not None:
        rollback = dataclasses.replace(rollback, parallelism=opts["rollback_parallelism"])
    if opts.get("rollback_delay"):
        rollback = dataclasses.replace(rollback, delay=parse_duration(opts["rollback_delay"]))
    spec = dataclasses.replace(spec, update_config=update, rollback_config=rollback)
    if opts.get("stop_grace_period"):
        container = dataclasses.replace(container, stop_grace_period=parse_duration(opts["stop_grace_period"]))
    for key, attr in (("hostname", "hostname"), ("user", "user"), ("workdir", "workdir")):
        if opts.get(key):
            container = dataclasses.replace(container, **{attr: opts[key]})
    if opts.get("health_cmd"):
        check = container.healthcheck or HealthConfig()
        check = dataclasses.replace(check, test=("CMD-SHELL", opts["health_cmd"]))
        times = {key: parse_duration(opts[f"health_{key}"]) for key in ("interval", "timeout", "start_period")
                 if opts.get(f"health_{key}")}
        check = dataclasses.replace(check, interval=times.get("interval", check.interval),
                                    timeout=times.get("timeout", check.timeout),
                                    start_period=times.get("start_period", check.start_period))
        if opts.get("health_retries") is not None:
            check = dataclasses.replace(check, retries=opts["health_retries"])
        container = dataclasses.replace(container, healthcheck=check)
    if opts.get("entrypoint"):
        container = dataclasses.replace(container, command=tuple(opts["entrypoint"].split()))
    return dataclasses.replace(spec, task=dataclasses.replace(task, container=container))


@service.command(context_settings={"allow_interspersed_args": False})
@click.option("--name", default="", help="Service name.")
@click.option("--replicas", type=int, help="Number of tasks.")
@click.option("--mode", type=click.Choice(["replicated", "global"]), default="replicated", show_default=True)
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--network", "networks", multiple=True, help="Attach to a network (NAME or name=NAME,alias=A).")
@click.option("--secret", "secrets_", multiple=True, help="A secret (NAME or source=NAME,target=,uid=,gid=,mode=).")
@click.option("--config", "configs", multiple=True, help="A config (NAME or source=NAME,target=/PATH,...).")
@click.option("--endpoint-mode", type=click.Choice(["vip", "dnsrr"]), default="vip", show_default=True)
@_spec_options
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def create(ctx: click.Context, /, name: str, replicas: int | None, mode: str, env: tuple[str, ...],
           networks: tuple[str, ...], secrets_: tuple[str, ...], configs: tuple[str, ...], endpoint_mode: str,
           image: str, args: tuple[str, ...], **opts: Any) -> None:
    """Create a new service."""
    if mode == "global" and replicas is not None:
        raise click.UsageError("replicas can only be used with replicated mode")
    if replicas is not None and replicas < 0:
        raise click.BadParameter(f"invalid replicas value {replicas}: it must be 0 or more", param_hint="--replicas")
    if not name:
        import secrets

        name = "svc_" + secrets.token_hex(4)
    container = ContainerSpec(image=image, args=tuple(args), env=tuple(env),
                              secrets=tuple(parse_file_ref(t, what="secret") for t in secrets_),
                              configs=tuple(parse_file_ref(t, what="config") for t in configs))
    spec = ServiceSpec(name=name, mode=ServiceMode(mode), replicas=1 if replicas is None else replicas,
                       task=TaskSpec(container=container, networks=tuple(parse_network(n) for n in networks)))
    spec = apply_options(spec, opts)
    spec = dataclasses.replace(spec, endpoint=dataclasses.replace(spec.endpoint, mode=EndpointMode(endpoint_mode)))
    result = client(ctx).post("/services/create", json={"spec": to_dict(spec)})
    click.echo(result["ID"])


@service.command(name="ls")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def list_services(ctx: click.Context, quiet: bool) -> None:
    """List services."""
    print_services(client(ctx).get("/services"), quiet=quiet)


def print_services(services: list[dict[str, Any]], *, quiet: bool) -> None:
    """`service ls` and `stack services`: Docker's columns; ports as allocated (as asked before that)."""
    if quiet:
        for item in services:
            click.echo(item["ID"])
        return
    rows = [["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]]
    for item in services:
        spec, status = item["Definition"], item["ServiceStatus"]
        published = item.get("Endpoint", {}).get("Ports") or [
            {"PublishedPort": p["published_port"], "TargetPort": p["target_port"], "Protocol": p["protocol"]}
            for p in spec["endpoint"]["ports"]]
        ports = ", ".join(f"*:{p['PublishedPort']}->{p['TargetPort']}/{p['Protocol']}" for p in published)
        rows.append([item["ID"][:12], spec["name"], spec["mode"], f"{status['RunningTasks']}/{status['DesiredTasks']}",
                     spec["task"]["container"]["image"], ports])
    table(rows)


def desired_state_params(filters: tuple[str, ...]) -> dict[str, str]:
    """`--filter desired-state=running|shutdown|accepted` as the /tasks query."""
    params = {}
    for key, value in key_values(filters, "filter").items():
        if key != "desired-state":
            raise click.BadParameter(f"unsupported filter {key!r} (desired-state=running|shutdown|accepted)")
        params["desired_state"] = value
    return params


@service.command()
@click.argument("ref")
@click.option("-q", "--quiet", is_flag=True, help="Only display task IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="desired-state=running|shutdown|accepted")
@click.pass_context
def ps(ctx: click.Context, ref: str, quiet: bool, no_trunc: bool, filters: tuple[str, ...]) -> None:
    """List the tasks of a service."""
    params = {"service": ref, **desired_state_params(filters)}
    control = client(ctx)
    print_tasks(control, control.get("/tasks", params=params), no_trunc=no_trunc, quiet=quiet)


def print_tasks(control: ControlClient, tasks: list[dict[str, Any]], *, no_trunc: bool, quiet: bool) -> None:
    if quiet:  # as Docker's: task IDs truncated unless --no-trunc
        for task in tasks:
            click.echo(task["ID"] if no_trunc else task["ID"][:12])
        return
    hostnames = {n["ID"]: n["Description"]["Hostname"] for n in control.get("/nodes")}
    rows = [["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"]]
    previous = ""
    for task in tasks:
        status = task["Status"]
        name = task["Name"]
        shown = f" \\_ {name}" if name == previous else name
        previous = name
        err = status["Err"] if no_trunc or len(status["Err"]) <= 60 else status["Err"][:57] + "..."
        rows.append([task["ID"] if no_trunc else task["ID"][:12], shown, task["Spec"]["ContainerSpec"]["Image"],
                     hostnames.get(task["NodeID"], task["NodeID"][:12]), task["DesiredState"].capitalize(),
                     f"{status['State'].capitalize()} {since(status['Timestamp']).lower()}", err, ""])
    table(rows)


@service.command()
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def inspect(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Display detailed information on one or more services."""
    control = client(ctx)
    click.echo(json.dumps([control.get(f"/services/{ref}") for ref in refs], indent=4))


@service.command()
@click.argument("pairs", nargs=-1, required=True)
@click.pass_context
def scale(ctx: click.Context, pairs: tuple[str, ...]) -> None:
    """Scale one or more replicated services: SERVICE=REPLICAS."""
    control = client(ctx)
    for pair in pairs:
        ref, sep, count = pair.partition("=")
        if not sep or not count.lstrip("-").isdigit():
            raise click.BadParameter(f"invalid scale specifier {pair!r}: expected SERVICE=REPLICAS")
        if int(count) < 0:
            raise click.BadParameter(f"invalid replicas value {count} for {ref}: it must be 0 or more")
        def scaled(spec: ServiceSpec, ref: str = ref, count: str = count) -> ServiceSpec:
            if spec.mode is ServiceMode.GLOBAL:
                raise click.UsageError(f"scale can only be used with replicated mode ({ref} is global)")
            return dataclasses.replace(spec, replicas=int(count))

        update_spec(control, ref, scaled)
        click.echo(f"{ref} scaled to {count}")


@service.command()
@click.argument("ref")
@click.option("--image")
@click.option("--replicas", type=int)
@click.option("--args", "new_args", help="Service command args (space separated).")
@click.option("--env-add", multiple=True)
@click.option("--env-rm", multiple=True)
@click.option("--constraint-add", multiple=True)
@click.option("--constraint-rm", multiple=True)
@click.option("--network-add", multiple=True, help="Add a network (NAME or name=NAME,alias=A).")
@click.option("--network-rm", multiple=True, help="Remove a network.")
@click.option("--secret-add", multiple=True, help="Add or replace a secret (NAME or source=NAME,target=...).")
@click.option("--secret-rm", multiple=True, help="Remove a secret.")
@click.option("--config-add", multiple=True, help="Add or replace a config.")
@click.option("--config-rm", multiple=True, help="Remove a config.")
@click.option("--publish-add", multiple=True, help="Add a published port.")
@click.option("--publish-rm", multiple=True, help="Remove a published port (its target port).")
@click.option("--force", is_flag=True, help="Replace the tasks even if nothing changed.")
@click.option("--rollback", is_flag=True, help="Roll back to the previous spec.")
@_spec_options
@click.pass_context
def update(ctx: click.Context, /, ref: str, image: str | None, replicas: int | None, new_args: str | None,
           env_add: tuple[str, ...], env_rm: tuple[str, ...], constraint_add: tuple[str, ...],
           constraint_rm: tuple[str, ...], force: bool, rollback: bool, **opts: Any) -> None:
    """Update a service (a rolling update when its tasks change)."""
    control = client(ctx)
    if rollback:
        item = control.get(f"/services/{ref}")
        control.post(f"/services/{item['ID']}/update", params={"rollback": "true"}, json={})
        click.echo(ref)
        return
    if opts.get("network_rm"):  # the spec holds network ids: the user names them
        known = {n["Name"]: n["Id"] for n in control.get("/networks")}
        opts["network_rm"] = tuple(known.get(ref, ref) for ref in opts["network_rm"])

    def edit(spec: ServiceSpec) -> ServiceSpec:
        return _edited(spec, image=image, replicas=replicas, new_args=new_args, env_add=env_add, env_rm=env_rm,
                       constraint_add=constraint_add, constraint_rm=constraint_rm, force=force, opts=opts)

    update_spec(control, ref, edit)
    click.echo(ref)


def update_spec(control: ControlClient, ref: str, edit: Callable[[ServiceSpec], ServiceSpec]) -> None:
    """Read the service, edit its spec, write it with the version read; when the leader changed the service
    meanwhile (its allocator, an update's progress), read and edit again, as a user would."""
    for attempt in range(5):
        item = control.get(f"/services/{ref}")
        spec = edit(from_dict(ServiceSpec, item["Definition"]))
        try:
            control.post(f"/services/{item['ID']}/update", params={"version": item["Version"]["Index"]},
                         json={"spec": to_dict(spec)})
            return
        except ControlError as exc:
            if exc.status != 409 or "stale" not in str(exc) or attempt == 4:
                raise


def _edited(spec: ServiceSpec, *, image: str | None, replicas: int | None, new_args: str | None,
            env_add: tuple[str, ...], env_rm: tuple[str, ...], constraint_add: tuple[str, ...],
            constraint_rm: tuple[str, ...], force: bool, opts: dict[str, Any]) -> ServiceSpec:
    if replicas is not None:
        if replicas < 0:
            raise click.BadParameter(f"invalid replicas value {replicas}: it must be 0 or more")
        spec = dataclasses.replace(spec, replicas=replicas)
    task, container = spec.task, spec.task.container
    if image:
        container = dataclasses.replace(container, image=image)
    if new_args is not None:
        container = dataclasses.replace(container, args=tuple(new_args.split()))
    if env_add or env_rm:
        drop = {e.split("=", 1)[0] for e in (*env_add, *env_rm)}
        container = dataclasses.replace(container, env=tuple(
            [e for e in container.env if e.split("=", 1)[0] not in drop] + list(env_add)))
    constraints = [c for c in task.placement.constraints if c not in constraint_rm] + list(constraint_add)
    task = dataclasses.replace(task, container=container, placement=dataclasses.replace(
        task.placement, constraints=tuple(constraints)))
    if force:
        task = dataclasses.replace(task, force_update=task.force_update + 1)
    spec = _apply_add_rm(dataclasses.replace(spec, task=task), opts)
    return apply_options(spec, {k: v for k, v in opts.items() if not k.endswith(("_add", "_rm"))})


def _apply_add_rm(spec: ServiceSpec, opts: dict[str, Any]) -> ServiceSpec:
    """`service update`'s --network-add/-rm, --secret-add/-rm, --config-add/-rm, --publish-add/-rm."""
    task, container = spec.task, spec.task.container
    gone = set(opts.get("network_rm") or ())
    nets = [n for n in task.networks if n.target not in gone]
    nets += [parse_network(n) for n in opts.get("network_add") or ()]
    files: dict[str, tuple[FileReference, ...]] = {}
    for what, current in (("secret", container.secrets), ("config", container.configs)):
        added = [parse_file_ref(t, what=what) for t in opts.get(f"{what}_add") or ()]
        drop = set(opts.get(f"{what}_rm") or ()) | {r.name for r in added}
        files[what] = tuple([r for r in current if r.name not in drop and r.id not in drop] + added)
    container = dataclasses.replace(container, secrets=files["secret"], configs=files["config"])
    ports = list(spec.endpoint.ports)
    for text in opts.get("publish_rm") or ():
        target = int(text.split("/")[0].split(":")[-1].split("=")[-1])
        ports = [p for p in ports if p.target_port != target]
    ports += [parse_publish(p) for p in opts.get("publish_add") or ()]
    task = dataclasses.replace(task, networks=tuple(nets), container=container)
    return dataclasses.replace(spec, task=task, endpoint=dataclasses.replace(spec.endpoint, ports=tuple(ports)))


@service.command()
@click.argument("ref")
@click.pass_context
def rollback(ctx: click.Context, ref: str) -> None:
    """Revert a service to its previous spec."""
    control = client(ctx)
    item = control.get(f"/services/{ref}")
    control.post(f"/services/{item['ID']}/update", params={"rollback": "true"}, json={})
    click.echo(ref)


@service.command()
@click.argument("ref")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.pass_context
def logs(ctx: click.Context, ref: str, tail: str) -> None:
    """Fetch the logs of a service's tasks."""
    control = client(ctx)
    transport_text = control.request("GET", f"/services/{ref}/logs", params={"tail": tail})
    click.echo(transport_text, nl=False)


@service.command(name="rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def remove(ctx: click.Context, refs: tuple[str, ...]) -> None:
    """Remove one or more services."""
    control = client(ctx)
    for ref in refs:
        control.delete(f"/services/{ref}")
        click.echo(ref)



