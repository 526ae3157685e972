"""The allocator: overlay subnets and VNIs, service VIPs and published ports, task addresses (pure decisions)."""

from orchestrator.allocator.allocator import (
    Allocation,
    allocate,
    ingress_of,
    publishes_ingress,
    task_network_ids,
    wanted_networks,
)
from orchestrator.allocator.ipam import (
    DEFAULT_POOLS,
    DEFAULT_SUBNET_SIZE,
    INGRESS_SUBNET,
    INGRESS_VNI,
    AllocationError,
    check_free,
    gateway_of,
    parse_subnet,
    pick_subnet,
    pick_vni,
)

__all__ = [
    "DEFAULT_POOLS",
    "DEFAULT_SUBNET_SIZE",
    "INGRESS_SUBNET",
    "INGRESS_VNI",
    "Allocation",
    "AllocationError",
    "allocate",
    "check_free",
    "gateway_of",
    "ingress_of",
    "parse_subnet",
    "pick_subnet",
    "pick_vni",
    "publishes_ingress",
    "task_network_ids",
    "wanted_networks",
]
