"""The manager's side of `stack deploy` and `stack rm`: a StackDeployment applied in one store transaction.

Everything the deployment names is created, changed or kept so that the store holds what the compose
file says, all at once or not at all (a refused deployment changes nothing):

* networks: created with the allocator's VNI and subnet; an existing one of the stack is kept;
* secrets and configs: created sealed; one whose content changed is sealed anew under the same id, and
  since services carry the content's digest in their spec, the services that mount it roll;
* services: created, or updated when their spec changed (a rolling update, as `service update`);
  services of the stack that the file no longer has are removed only with `prune`, as Docker does;
* the Stack object records what the stack holds; `stack rm` removes all of it.

Names are the compose file's, resolved to ids here (manager.control.resolve_spec), and every object carries
the namespace label (com.docker.stack.namespace).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orchestrator.manager import control
from orchestrator.manager.errors import BadRequest, Conflict, NotFound
from orchestrator.manager.manager import Manager
from orchestrator.model import Config, Network, Secret, SecretSpec, Service, ServiceSpec, Stack, StackSpec
from orchestrator.reconcile.plan import new_id
from orchestrator.security.sealing import content_digest
from orchestrator.stacks.model import NAMESPACE_LABEL, StackDeployment
from orchestrator.store import Op, VersionConflict

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
T = TypeVar("T", Service, Network, Secret, Config)


@dataclass(slots=True)
class Outcome:
    """What a deployment did, in the order Docker prints it ("Creating network x", "Updating service y")."""

    actions: list[str] = field(default_factory=list)
    stack: Stack | None = None


def stack_objects(manager: Manager, name: str, kind: type[T]) -> list[T]:
    return [o for o in manager.store.list(kind) if _labels_of(o).get(NAMESPACE_LABEL) == name]


def _labels_of(obj: Any) -> dict[str, str]:
    return dict(obj.spec.labels)


def find_stack(manager: Manager, name: str) -> Stack:
    for stack in manager.store.list(Stack):
        if stack.spec.name == name:
            return stack
    raise NotFound(f"stack {name} not found")


def deploy_stack(manager: Manager, deployment: StackDeployment, *, prune: bool = False) -> Outcome:
    name = deployment.spec.name
    if not _NAME.match(name):
        raise BadRequest(f"invalid stack name {name!r}: use letters, digits, '_', '.' and '-'")
    for _ in range(5):
        outcome = Outcome()
        ops = _plan(manager, deployment, prune=prune, outcome=outcome)
        try:
            manager.store.transact(ops)
        except VersionConflict:
            continue  # another allocation or change came first: decide again from the new state
        outcome.stack = find_stack(manager, name)
        return outcome
    raise Conflict(f"stack {name}: too many concurrent changes, try again")


def _plan(manager: Manager, deployment: StackDeployment, *, prune: bool, outcome: Outcome) -> list[Op]:
    name = deployment.spec.name
    now = time.time()
    _check_external(manager, deployment)
    ops: list[Op] = [control.allocation_guard(manager)]
    networks = _plan_networks(manager, deployment, ops, outcome, now=now)
    secrets = _plan_files(manager, name, deployment.secrets, Secret, ops, outcome)
    configs = _plan_files(manager, name, deployment.configs, Config, ops, outcome)
    specs = [_labelled(spec, name) for spec in deployment.services]
    _check_names(name, specs)
    kept: list[str] = []
    for spec in specs:
        current = next((s for s in manager.store.list(Service) if s.spec.name == spec.name), None)
        if current is not None and _labels_of(current).get(NAMESPACE_LABEL) != name:
            raise Conflict(f"service {spec.name} exists and is not part of stack {name}")
        resolved = control.resolve_spec(manager, spec, networks=networks, secrets=secrets, configs=configs,
                                        service_id=current.id if current else "", others=tuple(specs))
        control.check_spec(resolved)
        kept.append(resolved.name)
        if current is None:
            ops.append(Op.create(Service(id=new_id(), spec=resolved, created_at=now, updated_at=now)))
            outcome.actions.append(f"Creating service {resolved.name}")
        elif current.spec != resolved:
            ops.append(Op.update(control.updated_service(current, resolved, now=now)))
            outcome.actions.append(f"Updating service {resolved.name} (id: {current.id})")
    if prune:
        _plan_prune(manager, name, kept, ops, outcome)
    previous = next((s for s in manager.store.list(Stack) if s.spec.name == name), None)
    stack = Stack(id=previous.id if previous else new_id(), version=previous.version if previous else 0,
                  spec=StackSpec(name=name, labels=dict(deployment.spec.labels)),
                  services=tuple(sorted(set(kept) | (set(previous.services) if previous and not prune else set()))),
                  networks=tuple(sorted(n.spec.name for n in networks)) + tuple(deployment.external_networks),
                  secrets=tuple(sorted(s.spec.name for s in secrets)),
                  configs=tuple(sorted(c.spec.name for c in configs)),
                  created_at=previous.created_at if previous else now, updated_at=now)
    ops.append(Op.update(stack) if previous else Op.create(stack))
    return ops


def _check_external(manager: Manager, deployment: StackDeployment) -> None:
    checks: list[tuple[tuple[str, ...], list[Any], str]] = [
        (deployment.external_networks, list(manager.store.list(Network)), "network"),
        (deployment.external_secrets, list(manager.store.list(Secret)), "secret"),
        (deployment.external_configs, list(manager.store.list(Config)), "config")]
    for names, objects, what in checks:
        present = {o.spec.name for o in objects}
        for name in names:
            if name not in present:
                raise NotFound(f"{what} {name} is declared as external, but could not be found: create it first "
                               f"(pyswarm {what} create)")


def _check_names(stack: str, specs: Iterable[ServiceSpec]) -> None:
    for spec in specs:
        if not spec.name.startswith(f"{stack}_"):
            raise BadRequest(f"service {spec.name} is not named after stack {stack} ({stack}_<service>)")


def _labelled(spec: ServiceSpec, stack: str) -> ServiceSpec:
    return dataclasses.replace(spec, labels={**spec.labels, NAMESPACE_LABEL: stack})


def _plan_networks(manager: Manager, deployment: StackDeployment, ops: list[Op], outcome: Outcome, *,
                   now: float) -> list[Network]:
    name = deployment.spec.name
    stored: dict[str, Network] = {n.spec.name: n for n in manager.store.list(Network)}
    networks: list[Network] = []
    for spec in deployment.networks:
        spec = dataclasses.replace(spec, labels={**spec.labels, NAMESPACE_LABEL: name})
        current = stored.get(spec.name)
        if current is not None:
            if _labels_of(current).get(NAMESPACE_LABEL) != name:
                raise Conflict(f"network {spec.name} exists and is not part of stack {name}: remove it or mark it "
                               "external in the compose file")
            networks.append(current)
            continue
        network = control.new_network(manager, spec, existing=networks, now=now)
        ops.append(Op.create(network))
        networks.append(network)
        outcome.actions.append(f"Creating network {spec.name}")
    return networks


def _plan_files(manager: Manager, stack: str, specs: Iterable[SecretSpec], kind: type[Secret] | type[Config],
                ops: list[Op], outcome: Outcome) -> list[Secret | Config]:
    what = "secret" if kind is Secret else "config"
    stored: dict[str, Secret | Config] = {o.spec.name: o for o in manager.store.list(kind)}
    out: list[Secret | Config] = []
    for spec in specs:
        spec = dataclasses.replace(spec, labels={**spec.labels, NAMESPACE_LABEL: stack})
        current = stored.get(spec.name)
        if current is not None and _labels_of(current).get(NAMESPACE_LABEL) != stack:
            raise Conflict(f"{what} {spec.name} exists and is not part of stack {stack}")
        if current is not None and current.digest == content_digest(spec.data):
            out.append(current)
            continue
        obj = control.sealed_object(manager, spec, kind, object_id=current.id if current else None,
                                    created_at=current.created_at if current else None)
        if current is None:
            ops.append(Op.create(obj))
            outcome.actions.append(f"Creating {what} {spec.name}")
        else:
            obj = dataclasses.replace(obj, version=current.version)
            ops.append(Op.update(obj))
            outcome.actions.append(f"Updating {what} {spec.name} (its services roll)")
        out.append(obj)
    return out


def _plan_prune(manager: Manager, stack: str, kept: list[str], ops: list[Op], outcome: Outcome) -> None:
    for service in stack_objects(manager, stack, Service):
        if service.spec.name not in kept:
            ops.append(Op.delete(Service, service.id))
            outcome.actions.append(f"Removing service {service.spec.name}")


def remove_stack(manager: Manager, name: str) -> list[str]:
    """Services, networks, secrets and configs of the stack, and the stack, in one transaction."""
    stacks = [s for s in manager.store.list(Stack) if s.spec.name == name]
    services = stack_objects(manager, name, Service)
    networks = stack_objects(manager, name, Network)
    secrets = stack_objects(manager, name, Secret)
    configs = stack_objects(manager, name, Config)
    if not (stacks or services or networks or secrets or configs):
        raise NotFound(f"nothing found in stack: {name}")
    others = [s for s in manager.store.list(Service) if _labels_of(s).get(NAMESPACE_LABEL) != name]
    for network in networks:
        users = [s.spec.name for s in others if any(a.target == network.id for a in s.spec.task.networks)]
        if users:
            raise Conflict(f"network {network.spec.name} of stack {name} is in use by service {', '.join(users)}")
    ops: list[Op] = []
    actions: list[str] = []
    groups: list[tuple[str, list[Any]]] = [("service", services), ("secret", secrets), ("config", configs),
                                           ("network", networks)]
    for kind_word, items in groups:
        for obj in sorted(items, key=lambda o: o.spec.name):
            ops.append(Op.delete(type(obj), obj.id))
            actions.append(f"Removing {kind_word} {obj.spec.name}")
    ops += [Op.delete(Stack, s.id) for s in stacks]
    manager.store.transact(ops)
    return actions


def stack_summary(manager: Manager, stack: Stack) -> dict[str, Any]:
    services = stack_objects(manager, stack.spec.name, Service)
    return {"Name": stack.spec.name, "Services": len(services), "ID": stack.id}
