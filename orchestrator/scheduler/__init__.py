"""The scheduler: filters and spreading, as a pure function over a snapshot."""

from orchestrator.scheduler.constraint import (
    Constraint,
    ConstraintError,
    parse_constraint,
    parse_constraints,
    parse_spread,
    validate_placement,
)
from orchestrator.scheduler.filters import (
    AvailabilityFilter,
    ConstraintFilter,
    CpuFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    MemoryFilter,
    Pipeline,
    ReadyFilter,
    default_filters,
)
from orchestrator.scheduler.nodeinfo import NodeInfo, build_node_infos, is_task_active
from orchestrator.scheduler.scheduler import (
    Assignment,
    Decisions,
    Unschedulable,
    assign_task,
    mark_unschedulable,
    schedule,
)

__all__ = [
    "Assignment",
    "AvailabilityFilter",
    "Constraint",
    "ConstraintError",
    "ConstraintFilter",
    "CpuFilter",
    "Decisions",
    "Filter",
    "HostPortFilter",
    "MaxReplicasFilter",
    "MemoryFilter",
    "NodeInfo",
    "Pipeline",
    "ReadyFilter",
    "Unschedulable",
    "assign_task",
    "build_node_infos",
    "default_filters",
    "is_task_active",
    "mark_unschedulable",
    "parse_constraint",
    "parse_constraints",
    "parse_spread",
    "schedule",
    "validate_placement",
]
