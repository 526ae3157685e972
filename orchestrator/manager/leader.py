"""The leader's loops, one pass at a time: heartbeats -> node status, reconciler, allocator, scheduler.

Each step reads the replica, decides with pure code (`reconcile.plan_service`, `allocator.allocate`,
`scheduler.schedule`) and writes its decisions in transactions of its own; a conflict only means another
write came first, and the next pass (on the next committed change, or within half a second) decides again.
Tasks move NEW (reconciler) -> PENDING (allocator) -> ASSIGNED (scheduler); a task whose service
depends on others (`depends_on`) stays PENDING, with the reason, until they meet their condition.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from orchestrator.allocator import allocate
from orchestrator.model import Network, Node, NodeStatus, Service, Task, TaskState
from orchestrator.reconcile import Plan, plan_orphans, plan_service
from orchestrator.reconcile.dependencies import waiting_for, waiting_for_predecessor
from orchestrator.scheduler import assign_task, build_node_infos, mark_unschedulable, schedule
from orchestrator.store import Op, Store, StoreError

log = logging.getLogger(__name__)
NEW_LEADER_GRACE = 5.0


class LeaderLoops:
    def __init__(self, store: Store, *, last_seen: Callable[[str], float | None],
                 heartbeat_period: Callable[[], float]) -> None:
        self.store = store
        self._last_seen = last_seen
        self._period = heartbeat_period
        self.leader_since = time.time()
        self.wake_at: float | None = None

    def run_once(self) -> None:
        now = time.time()
        self.wake_at = None
        for step in (self.check_heartbeats, self.reconcile, self.allocate, self.schedule):
            try:
                step(now)
            except StoreError as exc:
                log.info("%s: %s (retrying on the next pass)", step.__name__, exc)

    # --- dispatcher: nodes that stopped sending heartbeats ------------------------------------------
    def check_heartbeats(self, now: float) -> None:
        limit = 3 * self._period()
        ops = []
        for node in self.store.list(Node):
            seen = self._last_seen(node.id)
            # a node this leader has not heard from yet gets a grace period: its agent may still be
            # finding the new leader (or starting, when every manager restarted)
            missed = now - seen > limit if seen is not None else now - self.leader_since > limit + NEW_LEADER_GRACE
            if node.status is NodeStatus.READY and missed:
                ops.append(Op.update(dataclasses.replace(
                    node, status=NodeStatus.DOWN, status_message="heartbeat failure", updated_at=now)))
        if ops:
            self.store.transact(ops)

    # --- reconciler ----------------------------------------------------------------------------------
    def reconcile(self, now: float) -> None:
        nodes = {n.id: n for n in self.store.list(Node)}
        by_service: dict[str, list[Task]] = defaultdict(list)
        for task in self.store.list(Task):
            by_service[task.service_id].append(task)
        services = {s.id: s for s in self.store.list(Service)}
        for service in services.values():
            plan = plan_service(service, by_service.get(service.id, []), nodes, now=now)
            self._write(plan)
        orphans = [t for sid, tasks in by_service.items() if sid not in services for t in tasks]
        if orphans:
            self._write(plan_orphans(orphans, nodes))

    def _write(self, plan: Plan) -> None:
        if plan.wake_at is not None:
            self.wake_at = plan.wake_at if self.wake_at is None else min(self.wake_at, plan.wake_at)
        if plan.is_empty():
            return
        ops = [Op.create(t) for t in plan.creates]
        ops += [Op.update(t) for t in plan.updates.values()]
        ops += [Op.delete(Task, task_id) for task_id in plan.deletes if task_id not in plan.updates]
        if plan.service is not None:
            ops.append(Op.update(plan.service))
        self.store.transact(ops)

    # --- allocator -----------------------------------------------------------------------------------
    def allocate(self, now: float) -> None:
        decided = allocate(networks=self.store.list(Network), services=self.store.list(Service),
                           tasks=self.store.list(Task), nodes=self.store.list(Node), now=now)
        if decided.is_empty():
            return
        ops = [Op.update(n) for n in decided.networks.values()]
        ops += [Op.update(s) for s in decided.services.values()]
        ops += [Op.update(t) for t in decided.tasks.values()]
        self.store.transact(ops)

    # --- scheduler -----------------------------------------------------------------------------------
    def schedule(self, now: float) -> None:
        tasks = self.store.list(Task)
        pending = [t for t in tasks if t.desired_state == TaskState.RUNNING and t.status.state == TaskState.PENDING]
        if not pending:
            return
        ops: list[Op] = []
        pending = self._hold_dependents(pending, tasks, ops, now=now)
        pending.sort(key=lambda t: (t.created_at, t.slot, t.id))
        decisions = schedule(build_node_infos(self.store.list(Node), tasks), pending)
        by_id = {t.id: t for t in pending}
        ops += [Op.update(assign_task(by_id[a.task_id], a.node_id, now=now)) for a in decisions.assignments]
        for u in decisions.unschedulable:
            task = by_id[u.task_id]
            if task.status.err != u.reason or task.status.state != TaskState.PENDING:
                ops.append(Op.update(mark_unschedulable(task, u.reason, now=now)))
        if ops:
            self.store.transact(ops)

    def _hold_dependents(self, pending: list[Task], tasks: list[Task], ops: list[Op], *, now: float) -> list[Task]:
        """The pending tasks free to go. Held back, with the reason in their status: those of services waiting
        on `depends_on`, and (stop-first updates) those whose predecessor in the slot has not stopped yet."""
        services = {s.id: s for s in self.store.list(Service)}
        by_name = {s.spec.name: s for s in services.values()}
        by_service: dict[str, list[Task]] = defaultdict(list)
        for task in tasks:
            by_service[task.service_id].append(task)
        nodes = {n.id: n for n in self.store.list(Node)}
        reasons: dict[str, str] = {}
        free = []
        for task in pending:
            service = services.get(task.service_id)
            if service is None:
                free.append(task)
                continue
            if service.id not in reasons:
                reasons[service.id] = waiting_for(service, by_name, by_service) if service.spec.depends_on else ""
            reason = reasons[service.id] or waiting_for_predecessor(task, service, by_service[service.id], nodes)
            if not reason:
                free.append(task)
            elif task.status.err != reason:
                ops.append(Op.update(mark_unschedulable(task, reason, now=now)))
        return free
