"""Docker-API-shaped views of the stored objects (`/nodes`, `/services`, `/tasks`, `/swarm`)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from typing import Any

from node.network.options import VNI_OPT
from orchestrator.manager.dockershape import to_docker
from orchestrator.model import (
    Cluster,
    Config,
    Network,
    Node,
    Secret,
    Service,
    ServiceMode,
    Stack,
    Task,
    TaskState,
    to_dict,
)


def timestamp(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat().replace("+00:00", "Z") if value else ""


def node_view(node: Node, manager_status: dict[str, Any] | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "ID": node.id,
        "Version": {"Index": node.version},
        "CreatedAt": timestamp(node.created_at),
        "UpdatedAt": timestamp(node.updated_at),
        "Spec": {"Role": node.role.value, "Availability": node.availability.value, "Labels": dict(node.labels)},
        "Description": {
            "Hostname": node.hostname,
            "Engine": {"Labels": dict(node.engine_labels)},
            "Resources": {"NanoCPUs": node.resources.nano_cpus, "MemoryBytes": node.resources.memory_bytes},
        },
        "Status": {"State": node.status.value, "Message": node.status_message, "Addr": node.addr},
    }
    if manager_status is not None:
        view["ManagerStatus"] = manager_status
    return view


def task_name(task: Task, service_name: str) -> str:
    return f"{service_name}.{task.slot if task.slot else task.node_id}"


def task_view(task: Task, service_name: str = "") -> dict[str, Any]:
    return {
        "ID": task.id,
        "Version": {"Index": task.version},
        "CreatedAt": timestamp(task.created_at),
        "UpdatedAt": timestamp(task.updated_at),
        "Name": task_name(task, service_name),
        "ServiceID": task.service_id,
        "Slot": task.slot,
        "NodeID": task.node_id or "",
        "DesiredState": task.desired_state.name.lower(),
        "Status": {"State": task.status.state.name.lower(), "Message": task.status.message,
                   "Err": task.status.err, "Timestamp": timestamp(task.status.timestamp)},
        "Spec": {"ContainerSpec": {"Image": task.spec.container.image, "Args": list(task.spec.container.args),
                                   "Env": list(task.spec.container.env)}},
        "Definition": to_dict(task.spec),
        "NetworksAttachments": [{"Network": {"ID": a.network_id}, "Addresses": list(a.addresses)}
                                for a in task.networks],
    }


def service_view(service: Service, tasks: Iterable[Task] = (), nodes_up: int = 0) -> dict[str, Any]:
    running = sum(1 for t in tasks if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING)
    desired = service.spec.replicas if service.spec.mode is ServiceMode.REPLICATED else nodes_up
    return {
        "ID": service.id,
        "Version": {"Index": service.version},
        "CreatedAt": timestamp(service.created_at),
        "UpdatedAt": timestamp(service.updated_at),
        "Spec": to_docker(service.spec),
        "Definition": to_dict(service.spec),
        "PreviousSpec": to_docker(service.previous_spec) if service.previous_spec else None,
        "UpdateStatus": _update_status_view(service),
        "ServiceStatus": {"RunningTasks": running, "DesiredTasks": desired},
        "Endpoint": _endpoint_view(service),
    }


def _update_status_view(service: Service) -> dict[str, Any] | None:
    """Docker's UpdateStatus: State (updating, paused, completed, rollback_started, ...), StartedAt,
    CompletedAt, Message."""
    status = service.update_status
    if status is None:
        return None
    return {"State": status.state.value, "StartedAt": timestamp(status.started_at),
            "CompletedAt": timestamp(status.completed_at), "Message": status.message}


def _endpoint_view(service: Service) -> dict[str, Any]:
    endpoint = service.endpoint
    ports = endpoint.ports if endpoint else ()
    return {
        "Spec": {"Mode": service.spec.endpoint.mode.value},
        "Ports": [{"Protocol": p.protocol.value, "TargetPort": p.target_port, "PublishedPort": p.published_port,
                   "PublishMode": p.publish_mode.value} for p in ports],
        "VirtualIPs": [{"NetworkID": v.network_id, "Addr": v.addresses[0]}
                       for v in (endpoint.virtual_ips if endpoint else ()) if v.addresses],
    }


def network_view(network: Network) -> dict[str, Any]:
    """Docker's network inspect shape, scope swarm."""
    options = dict(network.spec.options)
    options[VNI_OPT] = str(network.vni)
    return {
        "Name": network.spec.name, "Id": network.id, "Created": timestamp(network.created_at), "Scope": "swarm",
        "Driver": network.spec.driver, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None,
                 "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}] if network.subnet else []},
        "Internal": network.spec.internal, "Attachable": network.spec.attachable, "Ingress": network.spec.ingress,
        "Options": options, "Labels": dict(network.spec.labels),
    }


def secret_view(obj: Secret | Config, *, data: bytes | None = None) -> dict[str, Any]:
    """Docker's secret/config shape; a secret's content is never shown, a config's only when given."""
    spec: dict[str, Any] = {"Name": obj.spec.name, "Labels": dict(obj.spec.labels)}
    if data is not None:
        spec["Data"] = base64.b64encode(data).decode()
    return {"ID": obj.id, "Version": {"Index": obj.version}, "CreatedAt": timestamp(obj.created_at),
            "UpdatedAt": timestamp(obj.updated_at), "Spec": spec, "Digest": f"sha256:{obj.digest}"}


def stack_view(stack: Stack) -> dict[str, Any]:
    return {"ID": stack.id, "Version": {"Index": stack.version}, "Name": stack.spec.name,
            "CreatedAt": timestamp(stack.created_at), "UpdatedAt": timestamp(stack.updated_at),
            "Labels": dict(stack.spec.labels), "Services": list(stack.services), "Networks": list(stack.networks),
            "Secrets": list(stack.secrets), "Configs": list(stack.configs)}


def swarm_view(cluster: Cluster) -> dict[str, Any]:
    return {
        "ID": cluster.id,
        "Version": {"Index": cluster.version},
        "CreatedAt": timestamp(cluster.created_at),
        "UpdatedAt": timestamp(cluster.updated_at),
        "Spec": {"Name": cluster.spec.name, "Dispatcher": {"HeartbeatPeriod": cluster.spec.heartbeat_period},
                 "Orchestration": {"TaskHistoryRetentionLimit": cluster.spec.task_history_retention_limit}},
        "JoinTokens": {"Worker": cluster.root_ca.join_tokens.worker, "Manager": cluster.root_ca.join_tokens.manager},
        "TLSInfo": {"TrustRoot": cluster.root_ca.cert_pem, "CertIssuerDigest": cluster.root_ca.cert_digest},
    }
