"""Pure parts of networking: `-p` parsing, the nftables script, the DNS wire format and resolver."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address

import pytest

from node.errors import InvalidArgument
from node.network import dns, netns
from node.network.nft import BridgeRules, PortRule, render_table
from node.network.ports import PortBinding, normalize, parse_port_spec


def test_port_specs() -> None:
    assert parse_port_spec("8080:80") == [PortBinding(container_port=80, proto="tcp", host_port=8080)]
    assert parse_port_spec("127.0.0.1:8080:80/udp") == [
        PortBinding(container_port=80, proto="udp", host_ip="127.0.0.1", host_port=8080)]
    assert [(b.host_port, b.container_port) for b in parse_port_spec("8080-8082:80-82")] == [
        (8080, 80), (8081, 81), (8082, 82)]
    assert parse_port_spec("80") == [PortBinding(container_port=80, proto="tcp")]
    assert parse_port_spec("127.0.0.1::80") == [PortBinding(container_port=80, proto="tcp", host_ip="127.0.0.1")]
    for bad in ("8080-8082:80-81", "x:80", "70000:80", "80/sctp"):
        with pytest.raises(InvalidArgument):
            parse_port_spec(bad)


def test_api_bindings_normalize() -> None:
    assert normalize({"HostIp": "", "HostPort": "", "ContainerPort": "80/udp"}) == PortBinding(
        container_port=80, proto="udp")
    with pytest.raises(InvalidArgument):
        normalize({"ContainerPort": 80, "Protocol": "icmp"})


def test_nft_script_replaces_only_our_table() -> None:
    script = render_table(
        "pnx", [BridgeRules(iface="br-a", subnet="10.1.0.0/24"),
                BridgeRules(iface="br-b", subnet="10.2.0.0/24", internal=True)],
        [PortRule(host_ip="127.0.0.1", host_port=18080, proto="tcp", container_ip="10.1.0.2", container_port=80,
                  iface="br-a", container_id="c" * 64)])
    lines = script.splitlines()
    assert lines[:3] == ["table inet pnx", "delete table inet pnx", "table inet pnx {"]
    assert "flush ruleset" not in script and script.count("table inet") == 3
    assert 'ip daddr 127.0.0.1 tcp dport 18080 dnat ip to 10.1.0.2:80 comment "cccccccccccc"' in script
    assert 'ip saddr 10.1.0.0/24 oifname != "br-a" masquerade' in script
    assert 'ip saddr 10.2.0.0/24 oifname != "br-b" masquerade' not in script  # internal: no outbound
    assert 'iifname "br-b" drop' in script
    assert 'iifname { "br-a", "br-b" } oifname { "br-a", "br-b" } drop' in script


def test_dns_wire_roundtrip() -> None:
    query = dns.build_query("web", ident=7)
    question = dns.parse_question(query)
    assert question is not None and question.name == "web" and question.qtype == dns.TYPE_A
    reply = dns.build_response(query, question, rcode=0, addresses=[IPv4Address("10.1.0.2")])
    assert reply[:2] == query[:2]
    assert dns.parse_answers(reply) == (0, [IPv4Address("10.1.0.2")])
    assert dns.parse_question(b"\x00" * 5) is None


def test_resolver_answers_refuses_and_forwards() -> None:
    table = {"web": [IPv4Address("10.1.0.2")]}
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))
    port = upstream.getsockname()[1]

    async def scenario() -> list[tuple[int, list[IPv4Address]]]:
        loop = asyncio.get_running_loop()
        resolver = dns.Resolver(lambda _cid, name: table.get(name), lambda: [("127.0.0.1", port)])

        def fake_upstream() -> None:
            data, addr = upstream.recvfrom(512)
            question = dns.parse_question(data)
            assert question is not None
            upstream.sendto(dns.build_response(data, question, rcode=0, addresses=[IPv4Address("192.0.2.9")]), addr)

        served = loop.run_in_executor(None, fake_upstream)
        out = []
        for name, qtype in (("web", dns.TYPE_A), ("WEB.", dns.TYPE_A), ("web", dns.TYPE_AAAA),
                            ("nosuch", dns.TYPE_A), ("example.org", dns.TYPE_A)):
            reply = await resolver.answer("c1", dns.build_query(name, qtype))
            assert reply is not None
            out.append(dns.parse_answers(reply))
        await served
        return out

    try:
        results = asyncio.run(scenario())
    finally:
        upstream.close()
    assert results == [(0, [IPv4Address("10.1.0.2")]), (0, [IPv4Address("10.1.0.2")]), (0, []), (3, []),
                       (0, [IPv4Address("192.0.2.9")])]


def test_plan_bindings_with_publish_all_and_port_lines() -> None:
    from node.network.ports import plan_bindings, port_lines

    planned = plan_bindings(["8080:80"], exposed=["80/tcp", "53/udp"], publish_all=True)
    assert planned == [
        {"HostIp": "", "HostPort": "8080", "ContainerPort": 80, "Protocol": "tcp"},
        {"HostIp": "", "HostPort": "", "ContainerPort": 53, "Protocol": "udp"}]
    published = [{"HostIp": "0.0.0.0", "HostPort": "8080", "ContainerPort": 80, "Protocol": "tcp"},
                 {"HostIp": "127.0.0.1", "HostPort": "40000", "ContainerPort": 53, "Protocol": "udp"}]
    assert port_lines(published) == ["80/tcp -> 0.0.0.0:8080", "53/udp -> 127.0.0.1:40000"]
    assert port_lines(published, private="53/udp") == ["53/udp -> 127.0.0.1:40000"]


def test_the_fake_and_the_real_service_share_one_protocol() -> None:
    from node.network.fake import FakeNetworkService, SandboxNetworking
    from node.network.service import NetworkService

    def accepts(_svc: SandboxNetworking) -> None: ...

    fake = FakeNetworkService()
    accepts(fake)
    for name in SandboxNetworking.__dict__:
        if not name.startswith("_"):
            assert callable(getattr(NetworkService, name)), name
    fake.create_sandbox("c1")
    assert fake.connect("c1", "bridge", name="web")["IPAddress"] == "172.17.0.2"
    assert fake.publish("c1", [{"HostPort": "", "ContainerPort": 80}])[0]["HostPort"] == "49153"
    fake.restore([])
    assert fake.endpoints == {} and fake.ports == {}


def test_cli_specs_to_host_config_and_back_to_publish_calls() -> None:
    from node.network.ports import expose_of, plan_host_config_bindings, port_bindings_of

    bindings, exposed = port_bindings_of(["127.0.0.1:8080:80", "90-91:90-91/udp", "80"])
    assert bindings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "", "HostPort": ""}],
                        "90/udp": [{"HostIp": "", "HostPort": "90"}], "91/udp": [{"HostIp": "", "HostPort": "91"}]}
    assert set(exposed) == {"80/tcp", "90/udp", "91/udp"}
    assert expose_of(["53/udp", "8000-8001"]) == {"53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    planned = plan_host_config_bindings(bindings, exposed=["80/tcp", "443/tcp"], publish_all=True)
    assert [(p["ContainerPort"], p["Protocol"], p["HostIp"], p["HostPort"]) for p in planned] == [
        (80, "tcp", "127.0.0.1", "8080"), (80, "tcp", "", ""), (90, "udp", "", "90"), (91, "udp", "", "91"),
        (443, "tcp", "", "")]
    assert plan_host_config_bindings({"80/tcp": None}) == [
        {"HostIp": "", "HostPort": "", "ContainerPort": 80, "Protocol": "tcp"}]
    for bad in ({"80/icmp": []}, {"x/tcp": []}, {"80/tcp": [{"HostPort": "70000"}]}):
        with pytest.raises(InvalidArgument):
            plan_host_config_bindings(bad)
    with pytest.raises(InvalidArgument):
        expose_of(["eighty"])


def test_ps_ports_column_as_docker_prints_it() -> None:
    from node.network.ports import display_ports, list_ports, ports_view

    published = [{"HostIp": "127.0.0.1", "HostPort": "18080", "ContainerPort": 80, "Protocol": "tcp"},
                 {"HostIp": "0.0.0.0", "HostPort": "8080", "ContainerPort": 8080, "Protocol": "tcp"},
                 {"HostIp": "0.0.0.0", "HostPort": "8081", "ContainerPort": 8081, "Protocol": "tcp"},
                 {"HostIp": "0.0.0.0", "HostPort": "40000", "ContainerPort": 53, "Protocol": "udp"}]
    rows = list_ports(published, ["80/tcp", "443/tcp", "8080/tcp"])
    assert {"PrivatePort": 443, "Type": "tcp"} in rows and len(rows) == 5
    assert display_ports(rows) == ("443/tcp, 0.0.0.0:8080-8081->8080-8081/tcp, 0.0.0.0:40000->53/udp, "
                                   "127.0.0.1:18080->80/tcp")
    assert display_ports([]) == ""
    assert ports_view(published[:1], ["80/tcp", "443/tcp"]) == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "443/tcp": None}


def test_interface_counters_from_proc_net_dev() -> None:
    text = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
        "carrier compressed\n"
        "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0 "
        "      0          0\n"
        "  eth0:    1186      13    1    2    0     0          0         0      726       9    3    4    0     0 "
        "      0          0\n"
    )
    assert netns.parse_net_dev(text) == {"eth0": {"rx_bytes": 1186, "rx_packets": 13, "rx_errors": 1, "rx_dropped": 2,
                                                  "tx_bytes": 726, "tx_packets": 9, "tx_errors": 3, "tx_dropped": 4}}
