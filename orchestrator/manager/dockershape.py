"""Docker's service spec shape (`Name`, `TaskTemplate`, `Mode`, durations in nanoseconds) to and from ours.

The API returns both: `Spec` as Docker's clients read it, `Definition` as our model's dict (what the
pyswarm CLI edits and sends back). `POST /services/create` and `/services/{id}/update` take either.
"""

from __future__ import annotations

from typing import Any

from orchestrator.model import (
    ContainerSpec,
    EndpointMode,
    EndpointSpec,
    FailureAction,
    FileReference,
    Mount,
    MountType,
    NetworkAttachmentConfig,
    Placement,
    PlacementPreference,
    PortConfig,
    PortProtocol,
    PublishMode,
    ResourceRequirements,
    Resources,
    RestartCondition,
    RestartPolicy,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    UpdateConfig,
    UpdateOrder,
)

NS = 1_000_000_000


def to_docker(spec: ServiceSpec) -> dict[str, Any]:
    task, container = spec.task, spec.task.container
    mode: dict[str, Any] = {"Global": {}} if spec.mode is ServiceMode.GLOBAL else {
        "Replicated": {"Replicas": spec.replicas}}
    return {
        "Name": spec.name,
        "Labels": dict(spec.labels),
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": container.image, "Command": list(container.command), "Args": list(container.args),
                "Env": list(container.env), "Labels": dict(container.labels), "Hostname": container.hostname,
                "User": container.user, "Dir": container.workdir,
                "StopGracePeriod": int(container.stop_grace_period * NS),
                "Mounts": [_mount_to_docker(m) for m in container.mounts],
                "ReadOnly": container.read_only,
                "Secrets": [_file_to_docker(r, "Secret") for r in container.secrets],
                "Configs": [_file_to_docker(r, "Config") for r in container.configs],
            },
            "Networks": [{"Target": a.target, "Aliases": list(a.aliases)} for a in task.networks],
            "Resources": {"Limits": _resources(task.resources.limits),
                          "Reservations": _resources(task.resources.reservations)},
            "RestartPolicy": {"Condition": task.restart_policy.condition.value.replace("_", "-"),
                              "Delay": int(task.restart_policy.delay * NS),
                              "MaxAttempts": task.restart_policy.max_attempts,
                              "Window": int(task.restart_policy.window * NS)},
            "Placement": {"Constraints": list(task.placement.constraints),
                          "Preferences": [{"Spread": {"SpreadDescriptor": p.spread}}
                                          for p in task.placement.preferences]},
            "ForceUpdate": task.force_update,
        },
        "Mode": mode,
        "UpdateConfig": _update(spec.update_config),
        "RollbackConfig": _update(spec.rollback_config),
        "EndpointSpec": {"Mode": spec.endpoint.mode.value, "Ports": [
            {"Protocol": p.protocol.value, "TargetPort": p.target_port, "PublishedPort": p.published_port,
             "PublishMode": p.publish_mode.value} for p in spec.endpoint.ports]},
    }


def _mount_to_docker(m: Mount) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": m.type.value, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
    if m.type is MountType.TMPFS and (m.tmpfs_size_bytes or m.tmpfs_mode):
        out["TmpfsOptions"] = {"SizeBytes": m.tmpfs_size_bytes, "Mode": m.tmpfs_mode}
    return out


def _file_to_docker(ref: FileReference, kind: str) -> dict[str, Any]:
    return {f"{kind}ID": ref.id, f"{kind}Name": ref.name,
            "File": {"Name": ref.target, "UID": ref.uid, "GID": ref.gid, "Mode": ref.mode}}


def _file_from_docker(data: dict[str, Any], kind: str) -> FileReference:
    file = data.get("File") or {}
    name = str(data.get(f"{kind}Name") or "")
    return FileReference(id=str(data.get(f"{kind}ID") or ""), name=name, target=str(file.get("Name") or name),
                         uid=str(file.get("UID", "0")), gid=str(file.get("GID", "0")),
                         mode=int(file.get("Mode", 0o444)))


def _mount_from_docker(m: dict[str, Any]) -> Mount:
    tmpfs = m.get("TmpfsOptions") or {}
    return Mount(type=MountType(m.get("Type", "volume")), source=str(m.get("Source", "")), target=str(m["Target"]),
                 read_only=bool(m.get("ReadOnly")), tmpfs_size_bytes=int(tmpfs.get("SizeBytes", 0)),
                 tmpfs_mode=int(tmpfs.get("Mode", 0)))


def _resources(r: Resources) -> dict[str, int]:
    return {"NanoCPUs": r.nano_cpus, "MemoryBytes": r.memory_bytes}


def _update(u: UpdateConfig) -> dict[str, Any]:
    return {"Parallelism": u.parallelism, "Delay": int(u.delay * NS), "FailureAction": u.failure_action.value,
            "Monitor": int(u.monitor * NS), "MaxFailureRatio": u.max_failure_ratio,
            "Order": u.order.value.replace("_", "-")}


def from_docker(data: dict[str, Any]) -> ServiceSpec:
    """Docker's spec (as `docker service create` sends it) to ours; unknown members are ignored."""
    template = data.get("TaskTemplate") or {}
    cs = template.get("ContainerSpec") or {}
    container = ContainerSpec(
        image=str(cs.get("Image", "")), command=tuple(cs.get("Command") or ()), args=tuple(cs.get("Args") or ()),
        env=tuple(cs.get("Env") or ()), labels=dict(cs.get("Labels") or {}), hostname=str(cs.get("Hostname", "")),
        user=str(cs.get("User", "")), workdir=str(cs.get("Dir", "")),
        stop_grace_period=float(cs.get("StopGracePeriod", 10 * NS)) / NS,
        mounts=tuple(_mount_from_docker(m) for m in cs.get("Mounts") or ()), read_only=bool(cs.get("ReadOnly")),
        secrets=tuple(_file_from_docker(r, "Secret") for r in cs.get("Secrets") or ()),
        configs=tuple(_file_from_docker(r, "Config") for r in cs.get("Configs") or ()))
    res = template.get("Resources") or {}
    rp = template.get("RestartPolicy") or {}
    placement = template.get("Placement") or {}
    task = TaskSpec(
        container=container,
        resources=ResourceRequirements(limits=_read_resources(res.get("Limits")),
                                       reservations=_read_resources(res.get("Reservations"))),
        restart_policy=RestartPolicy(condition=RestartCondition(str(rp.get("Condition", "any")).replace("-", "_")),
                                     delay=float(rp.get("Delay", 5 * NS)) / NS,
                                     max_attempts=int(rp.get("MaxAttempts", 0)),
                                     window=float(rp.get("Window", 0)) / NS),
        placement=Placement(constraints=tuple(placement.get("Constraints") or ()), preferences=tuple(
            PlacementPreference(spread=p["Spread"]["SpreadDescriptor"]) for p in placement.get("Preferences") or ())),
        force_update=int(template.get("ForceUpdate", 0)),
        networks=tuple(NetworkAttachmentConfig(target=str(n["Target"]), aliases=tuple(n.get("Aliases") or ()))
                       for n in template.get("Networks") or data.get("Networks") or ()))
    mode = data.get("Mode") or {"Replicated": {"Replicas": 1}}
    is_global = "Global" in mode
    replicas = 0 if is_global else int((mode.get("Replicated") or {}).get("Replicas", 1))
    endpoint = data.get("EndpointSpec") or {}
    ports = tuple(PortConfig(protocol=PortProtocol(p.get("Protocol", "tcp")), target_port=int(p["TargetPort"]),
                             published_port=int(p.get("PublishedPort", 0)),
                             publish_mode=PublishMode(p.get("PublishMode", "ingress")))
                  for p in endpoint.get("Ports") or ())
    return ServiceSpec(name=str(data.get("Name", "")), labels=dict(data.get("Labels") or {}), task=task,
                       mode=ServiceMode.GLOBAL if is_global else ServiceMode.REPLICATED, replicas=replicas,
                       update_config=_read_update(data.get("UpdateConfig")),
                       rollback_config=_read_update(data.get("RollbackConfig")),
                       endpoint=EndpointSpec(mode=EndpointMode(endpoint.get("Mode") or "vip"), ports=ports))


def _read_resources(data: Any) -> Resources:
    data = data or {}
    return Resources(nano_cpus=int(data.get("NanoCPUs", 0)), memory_bytes=int(data.get("MemoryBytes", 0)))


def _read_update(data: Any) -> UpdateConfig:
    data = data or {}
    return UpdateConfig(parallelism=int(data.get("Parallelism", 1)), delay=float(data.get("Delay", 0)) / NS,
                        failure_action=FailureAction(data.get("FailureAction", "pause")),
                        monitor=float(data.get("Monitor", 5 * NS)) / NS,
                        max_failure_ratio=float(data.get("MaxFailureRatio", 0.0)),
                        order=UpdateOrder(str(data.get("Order", "stop-first")).replace("-", "_")))
