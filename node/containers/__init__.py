"""Containers: state model, create options, the lifecycle service, restart policy, health, logs, exec."""
