"""What one node must program for its overlays (manager/netstate.py): networks, peers, service records."""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.manager.netstate import mac_of, node_networks
from orchestrator.model import (
    ContainerSpec,
    Endpoint,
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

NODES = {n: Node(id=n, hostname=n, addr=f"192.168.1.{i}") for i, n in enumerate(("n1", "n2", "n3"), start=1)}
INGRESS = Network(id="ing", spec=NetworkSpec(name="ingress", ingress=True), vni=4096, subnet="10.0.0.0/24",
                  gateway="10.0.0.1", node_addresses={"n1": "10.0.0.2", "n2": "10.0.0.3", "n3": "10.0.0.4"})
MTU = {"com.docker.network.driver.mtu": "1400"}
BACK = Network(id="nb", spec=NetworkSpec(name="back", labels={"l": "v"}, options=MTU, attachable=True), vni=4097,
               subnet="10.0.1.0/24", gateway="10.0.1.1")
FRONT = Network(id="nf", spec=NetworkSpec(name="front", internal=True), vni=4098, subnet="10.0.2.0/24",
                gateway="10.0.2.1")
NETWORKS = [INGRESS, BACK, FRONT]


def service(sid: str, *, vips: dict[str, str], networks: dict[str, tuple[str, ...]] | None = None,
            ports: tuple[PortConfig, ...] = (), mode: EndpointMode = EndpointMode.VIP) -> Service:
    attached = networks if networks is not None else {nid: () for nid in vips if nid != "ing"}
    task = TaskSpec(container=ContainerSpec(image="busybox"),
                    networks=tuple(NetworkAttachmentConfig(target=n, aliases=a) for n, a in attached.items()))
    endpoint = Endpoint(ports=ports, virtual_ips=tuple(NetworkAttachment(network_id=n, addresses=(f"{a}/24",))
                                                       for n, a in vips.items()), spec_version="v1")
    return Service(id=sid, spec=ServiceSpec(name=sid, task=task, endpoint=EndpointSpec(mode=mode, ports=ports)),
                   endpoint=endpoint)


def task(tid: str, svc: Service, node: str | None, addrs: dict[str, str], *, state: TaskState = TaskState.RUNNING,
         desired: TaskState = TaskState.RUNNING) -> Task:
    return Task(id=tid, service_id=svc.id, node_id=node, desired_state=desired, status=TaskStatus(state=state),
                spec=svc.spec.task, ports=svc.spec.endpoint.ports,
                networks=tuple(NetworkAttachment(network_id=n, addresses=(f"{a}/24",)) for n, a in addrs.items()))


def views(node: str, services: list[Service], tasks: list[Task], *, networks: list[Network] | None = None
          ) -> dict[str, dict[str, Any]]:
    found = node_networks(node, nodes=NODES, networks=NETWORKS if networks is None else networks, services=services,
                          tasks=tasks)
    return {v["name"]: v for v in found}


def record(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in view["services"] if r["Name"] == name)


WEB_PORTS = (PortConfig(target_port=80, published_port=8080),)


def web_and_db() -> tuple[Service, Service]:
    web = service("web", vips={"nb": "10.0.1.2", "ing": "10.0.0.5"}, ports=WEB_PORTS)
    db = service("db", vips={"nb": "10.0.1.3"}, networks={"nb": ("database", "pg")})
    return web, db


def test_mac_of_is_02_42_and_the_address() -> None:
    assert mac_of("10.0.1.5") == "02:42:0a:00:01:05"
    assert mac_of("192.168.255.1") == "02:42:c0:a8:ff:01"


def test_a_node_sees_only_the_networks_its_own_live_tasks_use() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    front = service("front", vips={"nf": "10.0.2.2"})
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10"}), task("f1", front, "n2", {"nf": "10.0.2.10"})]
    assert list(views("n1", [web, front], tasks)) == ["back"]
    assert list(views("n2", [web, front], tasks)) == ["front"]
    assert views("n3", [web, front], tasks) == {}


def test_the_network_view_carries_the_networks_settings() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    view = views("n1", [web], [task("w1", web, "n1", {"nb": "10.0.1.10"})])["back"]
    assert {k: view[k] for k in ("id", "vni", "subnet", "gateway", "options", "labels", "internal", "attachable",
                                 "ingress", "node_ip")} == {
        "id": "nb", "vni": 4097, "subnet": "10.0.1.0/24", "gateway": "10.0.1.1",
        "options": {"com.docker.network.driver.mtu": "1400"}, "labels": {"l": "v"}, "internal": False,
        "attachable": True, "ingress": False, "node_ip": ""}


def test_tasks_not_on_their_node_yet_or_ended_do_not_join_it() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    pending = task("w1", web, None, {"nb": "10.0.1.10"}, state=TaskState.PENDING)
    assigned_elsewhere = dataclasses.replace(pending, id="w2", node_id="n1", status=TaskStatus(state=TaskState.PENDING))
    gone = task("w3", web, "n1", {"nb": "10.0.1.12"}, state=TaskState.SHUTDOWN, desired=TaskState.SHUTDOWN)
    assert views("n1", [web], [pending, assigned_elsewhere, gone]) == {}
    assigned = task("w4", web, "n1", {"nb": "10.0.1.13"}, state=TaskState.ASSIGNED)
    assert list(views("n1", [web], [assigned])) == ["back"]


def test_a_task_told_to_stop_but_still_running_keeps_its_node_on_the_network() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    stopping = task("w1", web, "n1", {"nb": "10.0.1.10"}, desired=TaskState.SHUTDOWN)
    view = views("n1", [web], [stopping])["back"]
    assert record(view, "web")["Backends"] == []  # but it is no backend any more


def test_a_network_without_a_subnet_or_unknown_is_left_out() -> None:
    web = service("web", vips={"nb": "10.0.1.2"}, networks={"nb": (), "gone": ()})
    unallocated = dataclasses.replace(BACK, subnet="")
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10", "gone": "10.9.0.2"})]
    assert views("n1", [web], tasks, networks=[unallocated]) == {}


def test_peers_are_the_remote_tasks_with_their_nodes_as_vtep() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10"}), task("w2", web, "n2", {"nb": "10.0.1.11"}),
             task("w3", web, "n3", {"nb": "10.0.1.9"}), task("w4", web, "n1", {"nb": "10.0.1.12"})]
    peers = views("n1", [web], tasks)["back"]["peers"]
    assert peers == [{"IP": "10.0.1.9", "MAC": "02:42:0a:00:01:09", "VTEP": "192.168.1.3"},
                     {"IP": "10.0.1.11", "MAC": "02:42:0a:00:01:0b", "VTEP": "192.168.1.2"}]  # by address


def test_peers_include_remote_tasks_not_running_yet_but_not_ended_ones() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10"}),
             task("w2", web, "n2", {"nb": "10.0.1.11"}, state=TaskState.STARTING),
             task("w3", web, "n3", {"nb": "10.0.1.12"}, state=TaskState.COMPLETE, desired=TaskState.SHUTDOWN),
             task("w4", web, None, {"nb": "10.0.1.13"}, state=TaskState.PENDING)]
    assert [p["IP"] for p in views("n1", [web], tasks)["back"]["peers"]] == ["10.0.1.11"]


def test_a_peer_on_a_node_without_an_address_is_left_out() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10"}), task("w2", web, "n9", {"nb": "10.0.1.11"})]
    assert views("n1", [web], tasks)["back"]["peers"] == []


def test_ingress_joins_once_a_service_publishes_there_and_the_node_has_an_address() -> None:
    db = service("db", vips={"nb": "10.0.1.3"})
    assert "ingress" not in views("n3", [db], [])
    web, _ = web_and_db()
    got = views("n3", [web, db], [])  # no task of web on n3: the routing mesh answers on every node
    assert list(got) == ["ingress"]
    assert got["ingress"]["node_ip"] == "10.0.0.4"
    far = dict(INGRESS.node_addresses)
    del far["n3"]
    assert views("n3", [web, db], [], networks=[dataclasses.replace(INGRESS, node_addresses=far), BACK]) == {}


def test_a_service_with_only_host_ports_does_not_join_ingress() -> None:
    host = (PortConfig(target_port=80, published_port=8080, publish_mode=PublishMode.HOST),)
    web = service("web", vips={"nb": "10.0.1.2"}, ports=host)
    assert views("n3", [web], []) == {}


def test_ingress_peers_are_remote_tasks_and_the_other_nodes_own_addresses() -> None:
    web, db = web_and_db()
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10", "ing": "10.0.0.10"}),
             task("w2", web, "n2", {"nb": "10.0.1.11", "ing": "10.0.0.11"})]
    peers = views("n1", [web, db], tasks)["ingress"]["peers"]
    assert peers == [{"IP": "10.0.0.3", "MAC": mac_of("10.0.0.3"), "VTEP": "192.168.1.2"},
                     {"IP": "10.0.0.4", "MAC": mac_of("10.0.0.4"), "VTEP": "192.168.1.3"},
                     {"IP": "10.0.0.11", "MAC": mac_of("10.0.0.11"), "VTEP": "192.168.1.2"}]


def test_service_records_carry_vip_aliases_and_running_backends() -> None:
    web, db = web_and_db()
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10", "ing": "10.0.0.10"}),
             task("d1", db, "n2", {"nb": "10.0.1.21"}),
             task("d2", db, "n3", {"nb": "10.0.1.20"}),
             task("d3", db, "n3", {"nb": "10.0.1.22"}, state=TaskState.STARTING),  # not healthy yet
             task("d4", db, "n2", {"nb": "10.0.1.23"}, desired=TaskState.SHUTDOWN),  # told to stop
             task("d5", db, "n2", {"nb": "10.0.1.24"}, state=TaskState.FAILED)]
    back = views("n1", [web, db], tasks)["back"]
    assert back["services"] == [
        {"Name": "db", "VIP": "10.0.1.3", "EndpointMode": "vip", "Backends": ["10.0.1.20", "10.0.1.21"],
         "Aliases": ["database", "pg"], "Ports": []},
        {"Name": "web", "VIP": "10.0.1.2", "EndpointMode": "vip", "Backends": ["10.0.1.10"], "Aliases": [],
         "Ports": []},  # ports only on ingress
    ]


def test_the_ingress_record_carries_the_published_ports() -> None:
    ports = (PortConfig(target_port=80, published_port=8080), PortConfig(target_port=53, published_port=30000,
                                                                         protocol=PortProtocol.UDP),
             PortConfig(target_port=22, published_port=2222, publish_mode=PublishMode.HOST))
    web = service("web", vips={"nb": "10.0.1.2", "ing": "10.0.0.5"}, ports=ports)
    tasks = [task("w1", web, "n2", {"nb": "10.0.1.10", "ing": "10.0.0.10"})]
    ingress = views("n1", [web], tasks)["ingress"]
    assert ingress["services"] == [{
        "Name": "web", "VIP": "10.0.0.5", "EndpointMode": "vip", "Backends": ["10.0.0.10"], "Aliases": [],
        "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080},
                  {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 30000}]}]


def test_a_dnsrr_record_has_no_vip_and_lists_backends() -> None:
    db = service("db", vips={}, networks={"nb": ()}, mode=EndpointMode.DNSRR)
    tasks = [task("d1", db, "n1", {"nb": "10.0.1.20"}), task("d2", db, "n2", {"nb": "10.0.1.21"})]
    assert record(views("n1", [db], tasks)["back"], "db") == {
        "Name": "db", "VIP": "", "EndpointMode": "dnsrr", "Backends": ["10.0.1.20", "10.0.1.21"], "Aliases": [],
        "Ports": []}


def test_a_service_without_an_endpoint_or_vip_here_has_no_record_yet() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    fresh = dataclasses.replace(service("fresh", vips={"nb": "10.0.1.5"}), endpoint=None)
    half = service("half", vips={"nf": "10.0.2.2"}, networks={"nb": (), "nf": ()})  # no VIP on back yet
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10"}), task("h1", half, "n2", {"nb": "10.0.1.11"})]
    assert [r["Name"] for r in views("n1", [web, fresh, half], tasks)["back"]["services"]] == ["web"]


def test_services_of_other_networks_are_not_in_this_ones_records() -> None:
    web = service("web", vips={"nb": "10.0.1.2"})
    front = service("front", vips={"nf": "10.0.2.2"})
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10"}), task("f1", front, "n1", {"nf": "10.0.2.10"})]
    got = views("n1", [web, front], tasks)
    assert [r["Name"] for r in got["back"]["services"]] == ["web"]
    assert [r["Name"] for r in got["front"]["services"]] == ["front"]


def test_the_view_is_the_same_whatever_the_input_order() -> None:
    web, db = web_and_db()
    tasks = [task("w1", web, "n1", {"nb": "10.0.1.10", "ing": "10.0.0.10"}),
             task("d1", db, "n2", {"nb": "10.0.1.21"}), task("d2", db, "n3", {"nb": "10.0.1.20"})]
    one = node_networks("n1", nodes=NODES, networks=NETWORKS, services=[web, db], tasks=tasks)
    other = node_networks("n1", nodes=NODES, networks=NETWORKS[::-1], services=[db, web], tasks=tasks[::-1])
    assert one == other
