"""The leader's reconciler: services (replicated and global) -> the tasks they need, as a pure plan.

`plan_service` takes a service, its tasks and the nodes and says which tasks to create and which to
change (desired state SHUTDOWN, never deleted while they may still run); the manager's loop writes
the plan in one transaction. Restart policy, scale, nodes going down or drained, rolling updates with
their failure action and rollback all live here, as SwarmKit's orchestrator and updater do.
"""

from orchestrator.reconcile.plan import Plan, new_task, plan_orphans, plan_service

__all__ = ["Plan", "new_task", "plan_orphans", "plan_service"]
