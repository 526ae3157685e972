"""Docker-API-shaped views of the stored objects (`/nodes`, `/services`, `/tasks`, `/swarm`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from orchestrator.manager.dockershape import to_docker
from orchestrator.model import Cluster, Node, Service, ServiceMode, Task, TaskState, to_dict


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
        "UpdateStatus": to_dict(service.update_status) if service.update_status else None,
        "ServiceStatus": {"RunningTasks": running, "DesiredTasks": desired},
    }


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
