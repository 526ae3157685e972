"""Which port changes make a task stale (reconcile/plan.py: port_shape, is_current)."""

from __future__ import annotations

import dataclasses

from orchestrator.model import (
    ContainerSpec,
    EndpointSpec,
    PortConfig,
    PortProtocol,
    PublishMode,
    ServiceSpec,
    Task,
    TaskSpec,
)
from orchestrator.reconcile.plan import is_current, port_shape

TASK_SPEC = TaskSpec(container=ContainerSpec(image="busybox"))


def spec(*ports: PortConfig) -> ServiceSpec:
    return ServiceSpec(name="web", task=TASK_SPEC, endpoint=EndpointSpec(ports=ports))


def task_of(service: ServiceSpec, *, ports: tuple[PortConfig, ...] | None = None) -> Task:
    return Task(id="t1", spec=service.task, ports=service.endpoint.ports if ports is None else ports)


INGRESS_80 = PortConfig(target_port=80, published_port=8080)
HOST_22 = PortConfig(target_port=22, published_port=2222, publish_mode=PublishMode.HOST)


def test_port_shape_ignores_the_ingress_number_and_keeps_the_host_one() -> None:
    assert port_shape([INGRESS_80, HOST_22]) == [("tcp", 22, "host", 2222), ("tcp", 80, "ingress", 0)]
    assert port_shape([HOST_22, INGRESS_80]) == port_shape([INGRESS_80, HOST_22])  # order does not matter


def test_a_changed_ingress_published_number_keeps_the_task_current() -> None:
    old = spec(INGRESS_80)
    task = task_of(old)
    assert is_current(task, old)
    assert is_current(task, spec(dataclasses.replace(INGRESS_80, published_port=9090)))
    assert is_current(task, spec(dataclasses.replace(INGRESS_80, published_port=0)))
    assert is_current(task, spec(dataclasses.replace(INGRESS_80, name="http")))


def test_adding_an_ingress_port_makes_the_task_stale() -> None:
    task = task_of(spec())
    assert not is_current(task, spec(INGRESS_80))
    assert not is_current(task_of(spec(INGRESS_80)), spec(INGRESS_80, PortConfig(target_port=443)))


def test_removing_a_port_or_changing_its_target_or_protocol_makes_the_task_stale() -> None:
    task = task_of(spec(INGRESS_80))
    assert not is_current(task, spec())
    assert not is_current(task, spec(dataclasses.replace(INGRESS_80, target_port=81)))
    assert not is_current(task, spec(dataclasses.replace(INGRESS_80, protocol=PortProtocol.UDP)))


def test_changing_a_host_mode_port_makes_the_task_stale() -> None:
    task = task_of(spec(HOST_22))
    assert not is_current(task, spec(dataclasses.replace(HOST_22, published_port=2223)))
    assert not is_current(task, spec(dataclasses.replace(HOST_22, publish_mode=PublishMode.INGRESS)))


def test_a_changed_task_template_makes_the_task_stale() -> None:
    task = task_of(spec(INGRESS_80))
    changed = dataclasses.replace(spec(INGRESS_80), task=TaskSpec(container=ContainerSpec(image="busybox:2")))
    assert not is_current(task, changed)
