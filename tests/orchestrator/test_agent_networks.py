"""The agent's pure overlay plan (agent/networks.py): engine networks, peers and service records, seen vs sent."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.agent.networks import (
    LABEL_NETWORK_ID,
    LOCAL_OPT,
    NODE_IP_OPT,
    VNI_OPT,
    plan_networks,
    plan_peers,
    plan_services,
    record_of,
)

LOCAL_IP = "192.168.1.1"


def wanted(nid: str, name: str, *, vni: int = 4097, subnet: str = "10.0.1.0/24", node_ip: str = "") -> dict[str, Any]:
    """A network as the dispatcher sends it (manager/netstate.py)."""
    return {"id": nid, "name": name, "vni": vni, "subnet": subnet, "gateway": subnet.replace("0/24", "1"),
            "options": {}, "labels": {}, "internal": False, "attachable": False, "ingress": bool(node_ip),
            "node_ip": node_ip, "peers": [], "services": []}


def engine(name: str, *, nid: str | None, vni: int = 4097, subnet: str = "10.0.1.0/24", node_ip: str = "",
           local_ip: str = LOCAL_IP, driver: str = "overlay") -> dict[str, Any]:
    """A network as the engine lists it (Docker's shape), as create_overlay_network made it."""
    options = {VNI_OPT: str(vni), LOCAL_OPT: local_ip} | ({NODE_IP_OPT: node_ip} if node_ip else {})
    return {"Name": name, "Id": f"engine-{name}", "Driver": driver, "Options": options,
            "IPAM": {"Config": [{"Subnet": subnet}]}, "Labels": {LABEL_NETWORK_ID: nid} if nid else {}}


# --- plan_networks -----------------------------------------------------------------------------------
def test_a_wanted_network_the_engine_lacks_is_created() -> None:
    plan = plan_networks([wanted("nb", "back")], [], local_ip=LOCAL_IP)
    assert [n["id"] for n in plan.create] == ["nb"]
    assert (plan.replace, plan.remove, dict(plan.taken)) == ((), (), {})


def test_a_network_made_as_wanted_is_left_alone() -> None:
    plan = plan_networks([wanted("nb", "back"), wanted("ing", "ingress", vni=4096, subnet="10.0.0.0/24",
                                                         node_ip="10.0.0.2")],
                         [engine("back", nid="nb"), engine("ingress", nid="ing", vni=4096, subnet="10.0.0.0/24",
                                                           node_ip="10.0.0.2")], local_ip=LOCAL_IP)
    assert (plan.create, plan.replace, plan.remove, dict(plan.taken)) == ((), (), (), {})


@pytest.mark.parametrize("have", [
    engine("back", nid="nb", vni=5000),
    engine("back", nid="nb", subnet="10.0.9.0/24"),
    engine("back", nid="nb", node_ip="10.0.1.250"),
    engine("back", nid="nb", local_ip="192.168.1.99"),
], ids=["vni", "subnet", "node_ip", "vtep"])
def test_a_network_made_with_other_settings_is_replaced(have: dict[str, Any]) -> None:
    plan = plan_networks([wanted("nb", "back")], [have], local_ip=LOCAL_IP)
    assert [n["id"] for n in plan.replace] == ["nb"]
    assert (plan.create, plan.remove) == ((), ())


def test_ours_no_longer_wanted_are_removed_by_name() -> None:
    plan = plan_networks([wanted("nb", "back")], [engine("back", nid="nb"), engine("old", nid="gone")],
                         local_ip=LOCAL_IP)
    assert plan.remove == ("old",)
    assert plan_networks([], [engine("back", nid="nb")], local_ip=LOCAL_IP).remove == ("back",)


def test_a_local_network_is_never_ours_to_remove() -> None:
    plan = plan_networks([], [engine("mine", nid=None), engine("br", nid=None, driver="bridge")], local_ip=LOCAL_IP)
    assert plan.remove == ()


def test_a_name_taken_by_a_local_network_is_reported_not_created() -> None:
    plan = plan_networks([wanted("nb", "back"), wanted("nf", "front")], [engine("back", nid=None)], local_ip=LOCAL_IP)
    assert dict(plan.taken) == {"nb": "network name back is taken on this node by a local overlay network"}
    assert [n["id"] for n in plan.create] == ["nf"]
    assert (plan.replace, plan.remove) == ((), ())


def test_an_engine_network_without_labels_or_options_reads_as_not_ours() -> None:
    bare = {"Name": "back", "Driver": "overlay", "Labels": None, "Options": None, "IPAM": None}
    plan = plan_networks([wanted("nb", "back")], [bare], local_ip=LOCAL_IP)
    assert list(plan.taken) == ["nb"] and plan.remove == ()


# --- plan_peers --------------------------------------------------------------------------------------
def peer(ip: str, vtep: str = "192.168.1.2", mac: str | None = None) -> dict[str, str]:
    return {"IP": ip, "MAC": mac or "02:42:0a:00:01:" + f"{int(ip.rsplit('.', 1)[1]):02x}", "VTEP": vtep}


def test_plan_peers_forgets_the_gone_and_adds_the_new() -> None:
    gone, added = plan_peers([peer("10.0.1.5"), peer("10.0.1.3")], [peer("10.0.1.3"), peer("10.0.1.7")])
    assert gone == ["10.0.1.5"]
    assert added == [peer("10.0.1.7")]


def test_plan_peers_replaces_a_peer_that_moved_and_ignores_mac_case() -> None:
    current = [peer("10.0.1.3", mac="02:42:0A:00:01:03"), peer("10.0.1.4")]
    gone, added = plan_peers(current, [peer("10.0.1.3"), peer("10.0.1.4", vtep="192.168.1.3")])
    assert gone == []
    assert added == [peer("10.0.1.4", vtep="192.168.1.3")]


def test_plan_peers_of_equal_sets_is_empty() -> None:
    assert plan_peers([peer("10.0.1.3")], [peer("10.0.1.3")]) == ([], [])
    assert plan_peers([], []) == ([], [])


# --- plan_services / record_of ----------------------------------------------------------------------------
def entry(name: str, **kw: Any) -> dict[str, Any]:
    return {"Name": name, "VIP": "10.0.1.2", "EndpointMode": "vip", "Backends": ["10.0.1.3"], "Aliases": [],
            "Ports": [], **kw}


def test_record_of_defaults_and_sorts_ports() -> None:
    assert record_of({"Name": "web"}) == ("", "vip", (), (), ())
    ports = [{"Protocol": "udp", "TargetPort": 53, "PublishedPort": 30000}, {"TargetPort": 80, "PublishedPort": 8080}]
    assert record_of(entry("web", Ports=ports))[4] == (("tcp", 80, 8080), ("udp", 53, 30000))
    assert record_of(entry("web", VIP=None)) == record_of(entry("web", VIP=""))


def test_plan_services_puts_new_and_changed_records_and_removes_the_gone() -> None:
    current = [entry("web"), entry("db", Backends=["10.0.1.4"]), entry("old")]
    want = [entry("web"), entry("db", Backends=["10.0.1.4", "10.0.1.5"]), entry("cache", VIP="10.0.1.9")]
    removed, put = plan_services(current, want)
    assert removed == ["old"]
    assert [e["Name"] for e in put] == ["db", "cache"]


@pytest.mark.parametrize("change", [{"VIP": "10.0.1.8"}, {"EndpointMode": "dnsrr", "VIP": ""},
                                    {"Aliases": ["www"]},
                                    {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8081}]}])
def test_any_change_of_a_record_puts_it(change: dict[str, Any]) -> None:
    assert plan_services([entry("web")], [entry("web", **change)]) == ([], [entry("web", **change)])


def test_record_names_compare_without_case() -> None:
    assert plan_services([entry("web")], [entry("Web")]) == ([], [])


def test_a_record_as_the_engine_stores_it_needs_no_put() -> None:
    """The engine keeps aliases lowercased and without the service's own name (node/network/vip.py): the
    record it lists back for what was put is the same record, so no pass puts it again."""
    sent = entry("web", Aliases=["WWW", "web", "front"])
    stored = entry("web", Aliases=["www", "front"])
    assert plan_services([stored], [sent]) == ([], [])


def test_our_copy_of_an_earlier_network_of_that_name_is_replaced_not_taken() -> None:
    """stack rm then stack deploy at once: the engine still holds the old cluster network under the name."""
    plan = plan_networks([wanted("new-id", "back")], [engine("back", nid="old-id")], local_ip=LOCAL_IP)
    assert [n["id"] for n in plan.replace] == ["new-id"]
    assert (plan.create, plan.remove, dict(plan.taken)) == ((), (), {})
