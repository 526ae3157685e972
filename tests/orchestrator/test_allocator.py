"""The allocator's pure decision: endpoints (VIPs, ingress ports), task addresses, the ingress network's
node addresses. Each test builds a store-like state, runs `allocate`, applies what it decided, and checks
that a second pass over the result decides nothing more."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

from orchestrator.allocator import Allocation, allocate
from orchestrator.model import (
    ContainerSpec,
    EndpointMode,
    EndpointSpec,
    Network,
    NetworkAttachment,
    NetworkAttachmentConfig,
    NetworkSpec,
    Node,
    PortConfig,
    PortProtocol,
    PublishMode,
    Service,
    ServiceSpec,
    Task,
    TaskSpec,
    TaskState,
    TaskStatus,
)


def network(nid: str, name: str, subnet: str, *, vni: int = 4097, ingress: bool = False) -> Network:
    return Network(id=nid, spec=NetworkSpec(name=name, ingress=ingress, subnets=(subnet,)), vni=vni, subnet=subnet,
                   gateway=str(ip_network(subnet).network_address + 1))


INGRESS = network("ing", "ingress", "10.0.0.0/24", vni=4096, ingress=True)
BACK = network("nb", "back", "10.0.1.0/24", vni=4097)
FRONT = network("nf", "front", "10.0.2.0/24", vni=4098)


def service(sid: str, *, networks: tuple[str, ...] = ("nb",), ports: tuple[PortConfig, ...] = (),
            mode: EndpointMode = EndpointMode.VIP, created: float = 1.0, image: str = "busybox") -> Service:
    task = TaskSpec(container=ContainerSpec(image=image),
                    networks=tuple(NetworkAttachmentConfig(target=n) for n in networks))
    return Service(id=sid, spec=ServiceSpec(name=sid, task=task, endpoint=EndpointSpec(mode=mode, ports=ports)),
                   created_at=created)


def ingress_port(target: int, published: int = 0, protocol: PortProtocol = PortProtocol.TCP) -> PortConfig:
    return PortConfig(target_port=target, published_port=published, protocol=protocol)


def host_port(target: int, published: int) -> PortConfig:
    return PortConfig(target_port=target, published_port=published, publish_mode=PublishMode.HOST)


def new_task(svc: Service, slot: int, *, created: float = 2.0) -> Task:
    return Task(id=f"{svc.id}.{slot}.{created}", service_id=svc.id, slot=slot, spec=svc.spec.task,
                ports=svc.spec.endpoint.ports, status=TaskStatus(state=TaskState.NEW), created_at=created)


@dataclass
class State:
    """What the store would hold: objects by id, changed only by applying an Allocation."""

    networks: dict[str, Network] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, *objs: Network | Service | Task | Node) -> State:
        tables: dict[type, dict[str, Any]] = {Network: self.networks, Service: self.services, Task: self.tasks,
                                               Node: self.nodes}
        for obj in objs:
            tables[type(obj)][obj.id] = obj
        return self

    def run(self, now: float = 10.0) -> Allocation:
        return allocate(networks=list(self.networks.values()), services=list(self.services.values()),
                        tasks=list(self.tasks.values()), nodes=list(self.nodes.values()), now=now)

    def apply(self, allocation: Allocation) -> None:
        self.networks.update(allocation.networks)
        self.services.update(allocation.services)
        self.tasks.update(allocation.tasks)

    def settle(self, now: float = 10.0) -> Allocation:
        """One pass, applied; a second pass over the result must decide nothing."""
        decided = self.run(now)
        self.apply(decided)
        again = self.run(now + 1)
        assert again.is_empty(), again
        return decided

    def update_task(self, task_id: str, **changes: object) -> None:
        self.tasks[task_id] = dataclasses.replace(self.tasks[task_id], **changes)  # type: ignore[arg-type]

    def update_spec(self, sid: str, **changes: object) -> None:
        svc = self.services[sid]
        self.services[sid] = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, **changes))  # type: ignore[arg-type]


def addresses(task: Task) -> dict[str, str]:
    return {a.network_id: a.addresses[0] for a in task.networks}


def vips(svc: Service) -> dict[str, str]:
    assert svc.endpoint is not None
    return {v.network_id: v.addresses[0] for v in svc.endpoint.virtual_ips}


def published(svc: Service) -> list[int]:
    assert svc.endpoint is not None
    return [p.published_port for p in svc.endpoint.ports]


def ended(state: State, task_id: str) -> None:
    state.update_task(task_id, desired_state=TaskState.SHUTDOWN, status=TaskStatus(state=TaskState.SHUTDOWN))


# --- tasks --------------------------------------------------------------------------------------------
def test_new_tasks_get_an_address_per_network_and_move_to_pending() -> None:
    web = service("web", networks=("nb", "nf"))
    state = State().add(BACK, FRONT, web, new_task(web, 1), new_task(web, 2, created=3.0))
    decided = state.settle()
    t1, t2 = state.tasks["web.1.2.0"], state.tasks["web.2.3.0"]
    assert {t.status.state for t in (t1, t2)} == {TaskState.PENDING}
    assert t1.status.message == "pending task scheduling" and t1.updated_at == 10.0
    # .1 is the gateway, .2 the service's VIP; tasks in creation order
    assert vips(state.services["web"]) == {"nb": "10.0.1.2/24", "nf": "10.0.2.2/24"}
    assert addresses(t1) == {"nb": "10.0.1.3/24", "nf": "10.0.2.3/24"}
    assert addresses(t2) == {"nb": "10.0.1.4/24", "nf": "10.0.2.4/24"}
    assert [a.network_id for a in t1.networks] == ["nb", "nf"]  # in the spec's order
    assert set(decided.tasks) == {t1.id, t2.id}


def test_a_service_publishing_in_ingress_mode_puts_its_tasks_on_ingress_too() -> None:
    web = service("web", ports=(ingress_port(80, 8080),))
    state = State().add(INGRESS, BACK, web, new_task(web, 1))
    state.settle()
    task = state.tasks["web.1.2.0"]
    assert list(addresses(task)) == ["nb", "ing"]
    assert set(vips(state.services["web"])) == {"nb", "ing"}
    assert task.ports == state.services["web"].endpoint.ports  # type: ignore[union-attr]


def test_host_mode_ports_alone_do_not_join_ingress() -> None:
    web = service("web", ports=(host_port(80, 8080),))
    state = State().add(INGRESS, BACK, web, new_task(web, 1))
    state.settle()
    assert list(addresses(state.tasks["web.1.2.0"])) == ["nb"]
    assert published(state.services["web"]) == [8080]


def test_tasks_of_a_service_without_networks_go_pending_without_addresses() -> None:
    job = service("job", networks=())
    state = State().add(BACK, job, new_task(job, 1))
    state.settle()
    task = state.tasks["job.1.2.0"]
    assert task.status.state is TaskState.PENDING and task.networks == ()


def test_tasks_not_new_or_not_wanted_are_left_alone() -> None:
    web = service("web")
    pending = dataclasses.replace(new_task(web, 1), status=TaskStatus(state=TaskState.PENDING))
    unwanted = dataclasses.replace(new_task(web, 2), desired_state=TaskState.SHUTDOWN)
    state = State().add(BACK, web, pending, unwanted)
    decided = state.settle()
    assert decided.tasks == {}


def test_a_task_whose_network_is_gone_stays_new_with_the_reason() -> None:
    web = service("web", networks=("gone",))
    state = State().add(BACK, web, new_task(web, 1))
    state.settle()
    task = state.tasks["web.1.2.0"]
    assert task.status.state is TaskState.NEW
    assert (task.status.err, task.status.message) == ("network gone not found", "allocation failed")
    assert task.networks == ()


def test_a_full_subnet_keeps_the_extra_tasks_new_until_an_address_is_freed() -> None:
    small = network("ns", "small", "10.0.5.0/29")  # .1 gateway, .2 VIP, .3-.6 for tasks
    web = service("web", networks=("ns",))
    tasks = [new_task(web, slot, created=float(slot)) for slot in range(1, 7)]
    state = State().add(small, web, *tasks)
    state.settle()
    got = {t.slot: t for t in state.tasks.values()}
    assert [got[s].status.state for s in range(1, 7)] == [TaskState.PENDING] * 4 + [TaskState.NEW] * 2
    assert sorted(addresses(got[s])["ns"] for s in range(1, 5)) == [f"10.0.5.{i}/29" for i in range(3, 7)]
    assert got[5].status.err == got[6].status.err == "no IP address left on network small (10.0.5.0/29)"
    # slot 2's task ends: its address goes to the first waiting task on the next pass
    freed = addresses(got[2])["ns"]
    ended(state, got[2].id)
    state.settle(now=20.0)
    fifth, sixth = state.tasks[tasks[4].id], state.tasks[tasks[5].id]
    assert fifth.status.state is TaskState.PENDING and addresses(fifth)["ns"] == freed
    assert sixth.status.state is TaskState.NEW


def test_a_failed_task_still_wanted_keeps_its_address() -> None:
    small = network("ns", "small", "10.0.5.0/30")  # .1 gateway, .2 the only address left (dnsrr: no VIP)
    web = service("web", networks=("ns",), mode=EndpointMode.DNSRR)
    first, second = new_task(web, 1, created=1.0), new_task(web, 1, created=2.0)
    state = State().add(small, web, first)
    state.settle()
    # the task failed but the reconciler has not told it to stop yet: its container may still be there
    state.update_task(first.id, status=TaskStatus(state=TaskState.FAILED))
    state.add(second)
    state.settle(now=20.0)
    assert state.tasks[second.id].status.err == "no IP address left on network small (10.0.5.0/30)"


def test_an_address_recently_given_up_is_reused_only_when_nothing_else_is_left() -> None:
    net = network("ns", "small", "10.0.5.0/29")  # .1 gateway; dnsrr: no VIP
    web = service("web", networks=("ns",), mode=EndpointMode.DNSRR)
    a, b = new_task(web, 1, created=1.0), new_task(web, 2, created=2.0)
    state = State().add(net, web, a, b)
    state.settle()
    assert addresses(state.tasks[a.id])["ns"] == "10.0.5.2/29"
    ended(state, a.id)
    c = new_task(web, 1, created=3.0)
    state.add(c)
    state.settle(now=20.0)
    assert addresses(state.tasks[c.id])["ns"] == "10.0.5.4/29"  # not .2: a's container may still be going away
    for slot in (3, 4, 5):
        state.add(new_task(web, slot, created=3.0 + slot))
    state.settle(now=30.0)
    got = sorted(addresses(t)["ns"] for t in state.tasks.values() if t.status.state is TaskState.PENDING)
    assert "10.0.5.2/29" in got  # the last address left was the recent one


def test_terminal_tasks_no_longer_wanted_free_their_addresses() -> None:
    net = network("ns", "small", "10.0.5.0/30")
    web = service("web", networks=("ns",), mode=EndpointMode.DNSRR)
    first = new_task(web, 1, created=1.0)
    state = State().add(net, web, first)
    state.settle()
    ended(state, first.id)
    second = new_task(web, 1, created=2.0)
    state.add(second)
    state.settle(now=20.0)
    assert state.tasks[second.id].status.state is TaskState.PENDING
    assert addresses(state.tasks[second.id]) == addresses(state.tasks[first.id]) == {"ns": "10.0.5.2/30"}


# --- service endpoints: VIPs ----------------------------------------------------------------------------
def test_a_dnsrr_service_gets_no_vip() -> None:
    web = service("web", networks=("nb", "nf"), mode=EndpointMode.DNSRR)
    state = State().add(BACK, FRONT, web, new_task(web, 1))
    state.settle()
    assert state.services["web"].endpoint.virtual_ips == ()  # type: ignore[union-attr]
    assert addresses(state.tasks["web.1.2.0"]) == {"nb": "10.0.1.2/24", "nf": "10.0.2.2/24"}


def test_vips_are_kept_when_the_endpoint_spec_did_not_change() -> None:
    web, api = service("web", created=1.0), service("api", created=2.0)
    state = State().add(BACK, web, api)
    state.settle()
    before = vips(state.services["web"])
    state.update_spec("web", task=dataclasses.replace(web.spec.task, container=ContainerSpec(image="busybox:2")))
    assert state.run().is_empty()
    assert vips(state.services["web"]) == before == {"nb": "10.0.1.2/24"}


def test_vips_on_kept_networks_survive_an_endpoint_change() -> None:
    web = service("web")
    state = State().add(INGRESS, BACK, FRONT, web)
    state.settle()
    state.update_spec("web", task=dataclasses.replace(
        web.spec.task, networks=(NetworkAttachmentConfig(target="nb"), NetworkAttachmentConfig(target="nf"))),
        endpoint=EndpointSpec(ports=(ingress_port(80),)))
    state.settle(now=20.0)
    assert vips(state.services["web"]) == {"nb": "10.0.1.2/24", "nf": "10.0.2.2/24", "ing": "10.0.0.2/24"}


def test_a_vip_is_released_when_its_network_is_dropped() -> None:
    web, api = service("web", networks=("nb", "nf"), created=1.0), service("api", networks=("nf",), created=2.0)
    state = State().add(BACK, FRONT, web)
    state.settle()
    assert vips(state.services["web"]) == {"nb": "10.0.1.2/24", "nf": "10.0.2.2/24"}
    state.update_spec("web", task=dataclasses.replace(web.spec.task, networks=(NetworkAttachmentConfig(target="nb"),)))
    state.add(api)
    state.settle(now=20.0)
    assert vips(state.services["web"]) == {"nb": "10.0.1.2/24"}
    assert vips(state.services["api"]) == {"nf": "10.0.2.2/24"}  # the address web let go


def test_switching_to_dnsrr_releases_the_vips() -> None:
    web = service("web")
    state = State().add(BACK, web)
    state.settle()
    state.update_spec("web", endpoint=EndpointSpec(mode=EndpointMode.DNSRR))
    state.add(new_task(service("web"), 1))
    state.settle(now=20.0)
    assert state.services["web"].endpoint.virtual_ips == ()  # type: ignore[union-attr]
    assert addresses(state.tasks["web.1.2.0"]) == {"nb": "10.0.1.2/24"}


def test_a_missing_network_gets_no_vip_and_its_tasks_say_why() -> None:
    web = service("web", networks=("nb", "gone"))
    state = State().add(BACK, web, new_task(web, 1))
    state.settle()
    assert vips(state.services["web"]) == {"nb": "10.0.1.2/24"}
    assert state.tasks["web.1.2.0"].status.err == "network gone not found"


def test_a_service_whose_vip_cannot_be_given_keeps_its_tasks_new() -> None:
    tiny = network("nt", "tiny", "10.0.5.0/30")  # .1 gateway, .2 the VIP of the first service
    first, second = service("first", networks=("nt",), created=1.0), service("second", networks=("nt",), created=2.0)
    state = State().add(tiny, first, second, new_task(second, 1))
    state.settle()
    assert vips(state.services["first"]) == {"nt": "10.0.5.2/30"}
    assert state.services["second"].endpoint is None
    assert state.tasks["second.1.2.0"].status.err == "no IP address left on network tiny (10.0.5.0/30)"


# --- service endpoints: ingress ports ------------------------------------------------------------------
def test_ingress_ports_without_a_number_get_one_from_30000() -> None:
    web = service("web", ports=(ingress_port(80), ingress_port(443, 8443), ingress_port(53, protocol=PortProtocol.UDP)))
    api = service("api", ports=(ingress_port(80),), created=2.0)
    state = State().add(INGRESS, BACK, web, api)
    state.settle()
    assert published(state.services["web"]) == [30000, 8443, 30000]  # tcp and udp numbers are separate
    assert published(state.services["api"]) == [30001]


def test_the_given_port_number_is_kept_across_updates() -> None:
    web = service("web", ports=(ingress_port(80),))
    other = service("other", ports=(ingress_port(80),), created=2.0)
    state = State().add(INGRESS, BACK, web, other)
    state.settle()
    assert published(state.services["web"]) == [30000]
    state.update_spec("web", endpoint=EndpointSpec(ports=(ingress_port(81), ingress_port(80))))
    state.settle(now=20.0)
    assert published(state.services["web"]) == [30002, 30000]  # 30001 is other's
    assert published(state.services["other"]) == [30001]


def test_host_mode_ports_are_kept_as_written() -> None:
    web = service("web", ports=(host_port(80, 8080), PortConfig(target_port=81, publish_mode=PublishMode.HOST)))
    state = State().add(INGRESS, BACK, web)
    state.settle()
    assert published(state.services["web"]) == [8080, 0]


def test_a_port_another_service_holds_keeps_this_services_tasks_new() -> None:
    web = service("web", ports=(ingress_port(80, 8080),), created=1.0)
    state = State().add(INGRESS, BACK, web)
    state.settle()
    api = service("api", ports=(ingress_port(80, 8080),), created=2.0)
    state.add(api, new_task(api, 1, created=3.0))
    state.settle(now=20.0)
    task = state.tasks["api.1.3.0"]
    assert task.status.state is TaskState.NEW
    assert task.status.err == "port 8080/tcp is already published by another service"
    assert state.services["api"].endpoint is None
    assert published(state.services["web"]) == [8080]


def test_a_refused_service_keeps_its_numbers_from_others() -> None:
    """web holds 30000; an update asking for a port api publishes is refused: 30000 stays web's, and a
    service allocated later in the same pass must not be given it."""
    web = service("web", ports=(ingress_port(80),), created=1.0)
    api = service("api", ports=(ingress_port(80, 8080),), created=2.0)
    state = State().add(INGRESS, BACK, web, api)
    state.settle()
    assert published(state.services["web"]) == [30000]
    state.update_spec("web", endpoint=EndpointSpec(ports=(ingress_port(81, 8080), ingress_port(80))))
    late = service("late", ports=(ingress_port(80),), created=3.0)
    state.add(late, new_task(web, 1, created=4.0))
    state.settle(now=20.0)
    assert state.tasks["web.1.4.0"].status.err == "port 8080/tcp is already published by another service"
    assert published(state.services["web"]) == [30000]  # the stored endpoint is unchanged
    assert published(state.services["late"]) == [30001]


def test_a_service_can_keep_its_own_explicit_port_across_an_update() -> None:
    web = service("web", ports=(ingress_port(80, 8080),))
    state = State().add(INGRESS, BACK, web)
    state.settle()
    state.update_spec("web", endpoint=EndpointSpec(ports=(ingress_port(80, 8080), ingress_port(81, 8081))))
    state.settle(now=20.0)
    assert published(state.services["web"]) == [8080, 8081]


# --- the ingress network's node addresses ----------------------------------------------------------------
def test_the_ingress_network_gets_an_address_per_node() -> None:
    nodes = [Node(id=f"n{i}", created_at=float(i), addr=f"192.168.1.{i}") for i in (1, 2)]
    state = State().add(INGRESS, BACK, *nodes)
    decided = state.settle()
    assert dict(state.networks["ing"].node_addresses) == {"n1": "10.0.0.2", "n2": "10.0.0.3"}
    assert decided.networks["ing"].updated_at == 10.0
    web = service("web", ports=(ingress_port(80),))
    state.add(web, new_task(web, 1))
    state.settle(now=20.0)
    assert vips(state.services["web"])["ing"] == "10.0.0.4/24"
    assert addresses(state.tasks["web.1.2.0"])["ing"] == "10.0.0.5/24"


def test_a_removed_nodes_ingress_address_is_dropped() -> None:
    nodes = [Node(id=f"n{i}", created_at=float(i)) for i in (1, 2, 3)]
    state = State().add(INGRESS, *nodes)
    state.settle()
    del state.nodes["n2"]
    state.settle(now=20.0)
    assert dict(state.networks["ing"].node_addresses) == {"n1": "10.0.0.2", "n3": "10.0.0.4"}
    state.add(Node(id="n4", created_at=4.0))
    state.settle(now=30.0)
    assert state.networks["ing"].node_addresses["n4"] == "10.0.0.3"


def test_no_ingress_network_no_node_addresses() -> None:
    state = State().add(BACK, Node(id="n1"))
    assert state.settle().networks == {}


def test_a_full_ingress_network_gives_what_it_can() -> None:
    small = network("ing", "ingress", "10.0.0.0/30", vni=4096, ingress=True)  # one address after the gateway
    state = State().add(small, Node(id="n1", created_at=1.0), Node(id="n2", created_at=2.0))
    state.settle()
    assert dict(state.networks["ing"].node_addresses) == {"n1": "10.0.0.2"}


# --- a pass over everything --------------------------------------------------------------------------
def test_a_mixed_state_settles_in_one_pass() -> None:
    nodes = [Node(id=f"n{i}", created_at=float(i), addr=f"192.168.1.{i}") for i in (1, 2, 3)]
    web = service("web", networks=("nb", "nf"), ports=(ingress_port(80), host_port(22, 2222)), created=1.0)
    db = service("db", networks=("nb",), mode=EndpointMode.DNSRR, created=2.0)
    lost = service("lost", networks=("nowhere",), created=3.0)
    tasks = [new_task(web, 1), new_task(web, 2), new_task(db, 1), new_task(lost, 1)]
    state = State().add(INGRESS, BACK, FRONT, web, db, lost, *tasks, *nodes)
    decided = state.settle()
    assert set(decided.services) == {"web", "db", "lost"} and set(decided.networks) == {"ing"}
    held: dict[str, list[str]] = {}
    for svc in state.services.values():
        for nid, addr in vips(svc).items():
            held.setdefault(nid, []).append(addr)
    for task in state.tasks.values():
        for nid, addr in addresses(task).items():
            held.setdefault(nid, []).append(addr)
    for nid, addr in state.networks["ing"].node_addresses.items():
        held.setdefault("ing", []).append(f"{addr}/24")
        assert nid in state.nodes
    for nid, addrs in held.items():
        assert len(addrs) == len(set(addrs)), (nid, addrs)  # no address given twice
    assert state.tasks["lost.1.2.0"].status.err == "network nowhere not found"


def test_nothing_changes_on_an_allocated_state_with_running_tasks() -> None:
    web = service("web", ports=(ingress_port(80),))
    state = State().add(INGRESS, BACK, web, new_task(web, 1), Node(id="n1"))
    state.settle()
    state.update_task("web.1.2.0", node_id="n1", status=TaskStatus(state=TaskState.RUNNING))
    assert state.run(now=99.0).is_empty()


def test_attachments_are_network_attachments_in_cidr_form() -> None:
    web = service("web")
    state = State().add(BACK, web, new_task(web, 1))
    state.settle()
    assert state.tasks["web.1.2.0"].networks == (NetworkAttachment(network_id="nb", addresses=("10.0.1.3/24",)),)


def test_a_service_refused_for_its_vip_keeps_its_port_numbers_from_others() -> None:
    """web drops its port 80 (30000) and joins a full network: refused, its stored endpoint still has 30000,
    so a service allocated later in the same pass gets another number."""
    tiny = network("nt", "tiny", "10.0.5.0/30")
    holder = service("holder", networks=("nt",), created=0.5)  # takes tiny's only address as its VIP
    web = service("web", ports=(ingress_port(80),), created=1.0)
    state = State().add(INGRESS, BACK, tiny, holder, web)
    state.settle()
    assert published(state.services["web"]) == [30000]
    state.update_spec("web", endpoint=EndpointSpec(ports=(ingress_port(81, 8081),)), task=dataclasses.replace(
        web.spec.task, networks=(NetworkAttachmentConfig(target="nb"), NetworkAttachmentConfig(target="nt"))))
    late = service("late", ports=(ingress_port(80),), created=3.0)
    state.add(late, new_task(web, 1, created=4.0))
    state.settle(now=20.0)
    assert state.tasks["web.1.4.0"].status.err == "no IP address left on network tiny (10.0.5.0/30)"
    assert published(state.services["web"]) == [30000]
    assert published(state.services["late"]) == [30001]


def test_a_blocked_service_gets_its_port_once_the_holder_lets_it_go() -> None:
    web = service("web", ports=(ingress_port(80, 8080),), created=1.0)
    api = service("api", ports=(ingress_port(80, 8080),), created=2.0)
    state = State().add(INGRESS, BACK, web, api, new_task(api, 1, created=3.0))
    state.settle()
    assert state.tasks["api.1.3.0"].status.state is TaskState.NEW
    state.update_spec("web", endpoint=EndpointSpec(ports=(ingress_port(80, 9090),)))
    state.settle(now=20.0)
    assert published(state.services["web"]) == [9090] and published(state.services["api"]) == [8080]
    task = state.tasks["api.1.3.0"]
    assert task.status.state is TaskState.PENDING and task.ports == state.services["api"].endpoint.ports  # type: ignore[union-attr]
