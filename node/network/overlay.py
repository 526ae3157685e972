"""The overlay driver: one Linux bridge and one VXLAN device per overlay network on this node, with static
FDB and neighbour entries for the network's remote endpoints (peers). No multicast, no gossip, no learning.

The engine keeps no cluster knowledge: the cluster's allocator decides the VNI, subnet, gateway and every
address, and the agent asks the engine for exactly that through network options and the peers API:

    com.docker.network.driver.overlay.vxlanid_list   the VNI (one; Docker's option name)
    com.docker.network.driver.mtu                    MTU of the bridge, VXLAN device and container veths
                                                     (default: the underlay's MTU minus 50, VXLAN's overhead)
    com.pynode.network.overlay.local_ip              this node's VTEP (advertise) address: VXLAN's `local`
    com.pynode.network.overlay.node_ip               optional: this node's own address in the overlay subnet

Kernel objects, on the node (the daemon's network namespace):

    ov-<id12>  bridge, MTU as above, addresses: node_ip (primary, when given) then the gateway
    vx-<id12>  vxlan id VNI dstport 4789 local LOCAL nolearning proxy, enslaved to ov-<id12>

The gateway address is the same on every node: each node routes its own containers' outbound traffic
(masqueraded like a bridge network's). It never clashes across nodes because the VXLAN device has `proxy`
on: ARP requests never cross the tunnel; the VXLAN device answers them from its static neighbour table
(one entry per peer) and drops the rest, so a container's ARP for the gateway is only ever answered by its
own node's bridge. Traffic the node itself sends into the overlay (ingress, `ping` from the node) leaves
from node_ip, which is unique per node and which other nodes know as a peer: replies come back to it.

Per peer {IP, MAC, VTEP}: `fdb MAC dst VTEP self permanent` (unicast to the right node),
`neigh IP lladdr MAC permanent` on the VXLAN device (proxied ARP), and one `fdb 00:00:00:00:00:00 dst VTEP`
per distinct remote VTEP (broadcast and unknown unicast). `sync_peers` reconciles the device with the full
desired peer list: missing entries are added, entries of peers no longer listed are removed.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from node.errors import Conflict, EngineFailure, InvalidArgument
from node.network.ipam import parse_address
from node.network.links import delete_link, index_of, iproute
from node.network.options import LOCAL_OPT, MTU_OPT, NODE_IP_OPT, VNI_OPT

VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
BUM_MAC = "00:00:00:00:00:00"
NTF_SELF = 0x02
NUD_PERMANENT = 0x80
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlaySettings:
    """What the allocator decided for this network, as this node needs it (parsed from the options)."""

    vni: int
    mtu: int | None = None  # None: the underlay's MTU minus VXLAN_OVERHEAD, found at creation
    local: IPv4Address | None = None
    node_ip: IPv4Address | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """A remote endpoint of the overlay: its address and MAC, and the VTEP (node address) it sits behind."""

    ip: str
    mac: str
    vtep: str

    def to_docker(self) -> dict[str, str]:
        return {"IP": self.ip, "MAC": self.mac, "VTEP": self.vtep}


@dataclass(frozen=True, slots=True)
class FdbEntry:
    mac: str
    dst: str


# --- pure decisions -------------------------------------------------------------------------------
def bridge_name(network_id: str) -> str:
    return f"ov-{network_id[:12]}"


def vxlan_name(network_id: str) -> str:
    return f"vx-{network_id[:12]}"


def parse_settings(options: Mapping[str, str], subnet: IPv4Network, gateway: IPv4Address) -> OverlaySettings:
    """Validate the overlay options of `network create`; every refusal names the option and the value."""
    raw_vni = options.get(VNI_OPT, "").strip()
    if not raw_vni:
        raise InvalidArgument(f"overlay networks are made by the cluster's allocator: option {VNI_OPT} (the VNI) "
                              "is required (use `pyswarm network create -d overlay`)")
    vnis = [v.strip() for v in raw_vni.split(",") if v.strip()]
    if len(vnis) != 1:
        raise InvalidArgument(f"{VNI_OPT}={raw_vni}: give exactly one VNI (one subnet per network)")
    if not vnis[0].isdigit() or not 1 <= int(vnis[0]) <= 0xFFFFFF:
        raise InvalidArgument(f"{VNI_OPT}={raw_vni}: a VNI is an integer from 1 to 16777215")
    mtu = None
    if options.get(MTU_OPT):
        if not options[MTU_OPT].isdigit() or not 68 <= int(options[MTU_OPT]) <= 65535:
            raise InvalidArgument(f"{MTU_OPT}={options[MTU_OPT]}: an MTU is an integer from 68 to 65535")
        mtu = int(options[MTU_OPT])
    local = parse_address(options[LOCAL_OPT], what=LOCAL_OPT) if options.get(LOCAL_OPT) else None
    node_ip = parse_address(options[NODE_IP_OPT], what=NODE_IP_OPT) if options.get(NODE_IP_OPT) else None
    if node_ip is not None and (node_ip not in subnet or node_ip in (gateway, subnet.network_address,
                                                                      subnet.broadcast_address)):
        raise InvalidArgument(f"{NODE_IP_OPT}={node_ip}: not a usable address of subnet {subnet} other than the "
                              f"gateway {gateway}")
    return OverlaySettings(vni=int(vnis[0]), mtu=mtu, local=local, node_ip=node_ip)


def parse_peers(raw: object, subnet: IPv4Network) -> list[Peer]:
    """`{"Peers": [{"IP", "MAC", "VTEP"}, ...]}`'s list -> Peers; one line naming the bad entry otherwise."""
    if not isinstance(raw, list):
        raise InvalidArgument('Peers must be a list of {"IP": ..., "MAC": ..., "VTEP": ...}')
    peers: dict[str, Peer] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidArgument(f"Peers[{index}]: expected an object with IP, MAC and VTEP")
        ip = parse_address(str(item.get("IP") or ""), what=f"Peers[{index}].IP")
        if ip not in subnet:
            raise InvalidArgument(f"Peers[{index}].IP {ip} is not in the network's subnet {subnet}")
        mac = str(item.get("MAC") or "").lower()
        if not _MAC.match(mac) or mac == BUM_MAC or int(mac[:2], 16) & 1:
            raise InvalidArgument(f"Peers[{index}].MAC {item.get('MAC')!r} is not a unicast MAC address")
        vtep = parse_address(str(item.get("VTEP") or ""), what=f"Peers[{index}].VTEP")
        peers[str(ip)] = Peer(ip=str(ip), mac=mac, vtep=str(vtep))
    return list(peers.values())


def merge_peers(current: Sequence[Peer], added: Sequence[Peer]) -> tuple[Peer, ...]:
    """Peers keyed by IP: an added peer replaces the one with its IP (a task moved or was re-created)."""
    by_ip = {p.ip: p for p in current} | {p.ip: p for p in added}
    return tuple(sorted(by_ip.values(), key=lambda p: IPv4Address(p.ip)))


def plan_fdb(peers: Iterable[Peer]) -> set[FdbEntry]:
    """The VXLAN device's static forwarding entries for these peers: one per MAC, one flood entry per VTEP."""
    peers = list(peers)
    return {FdbEntry(p.mac, p.vtep) for p in peers} | {FdbEntry(BUM_MAC, p.vtep) for p in peers}


def plan_neighbours(peers: Iterable[Peer]) -> dict[str, str]:
    return {p.ip: p.mac for p in peers}


def bridge_mac(node_ip: IPv4Address | None) -> str | None:
    """The bridge's MAC when the node has an address in the overlay: derived from it (02:42 + address), so
    the allocator can hand it to other nodes as a peer without asking this node."""
    return "02:42:" + ":".join(f"{b:02x}" for b in node_ip.packed) if node_ip is not None else None


# --- kernel ---------------------------------------------------------------------------------------
def underlay_mtu(local: IPv4Address | None) -> int:
    """MTU of the link holding `local` (else of the default route's link; else 1500)."""
    with iproute() as ipr:
        idx = None
        if local is not None:
            found = [a["index"] for a in ipr.get_addr(family=socket.AF_INET) if a.get("IFA_ADDRESS") == str(local)]
            idx = found[0] if found else None
        if idx is None:
            defaults = [r.get("RTA_OIF") for r in ipr.get_routes(family=socket.AF_INET, table=254)
                        if r["dst_len"] == 0 and r.get("RTA_OIF")]
            idx = defaults[0] if defaults else None
        if idx is None:
            return 1500
        return int(ipr.get_links(idx)[0].get("IFLA_MTU") or 1500)


def ensure_overlay(
    *, bridge: str, vxlan: str, settings: OverlaySettings, mtu: int, gateway: IPv4Address, prefixlen: int,
) -> None:
    """The bridge (node_ip then gateway on it, up) and the VXLAN device enslaved to it. Idempotent; what this
    call made is removed again when a later step fails."""
    made: list[str] = []
    try:
        with iproute() as ipr:
            if index_of(ipr, bridge) is None:
                mac = bridge_mac(settings.node_ip)
                ipr.link("add", ifname=bridge, kind="bridge", mtu=mtu, **({"address": mac} if mac else {}))
                made.append(bridge)
            br = index_of(ipr, bridge)
            assert br is not None
            if index_of(ipr, vxlan) is None:
                _add_vxlan(ipr, vxlan, settings, mtu)
                made.append(vxlan)
            vx = index_of(ipr, vxlan)
            ipr.link("set", index=vx, master=br, state="up")
            ipr.link("set", index=br, mtu=mtu)
            wanted = ([(str(settings.node_ip), prefixlen)] if settings.node_ip else []) + [(str(gateway), prefixlen)]
            _ensure_addresses(ipr, br, wanted)
            ipr.link("set", index=br, state="up")
    except Exception:
        for name in reversed(made):
            delete_link(name)
        raise


def _add_vxlan(ipr: IPRoute, name: str, settings: OverlaySettings, mtu: int) -> None:
    extra = {"vxlan_local": str(settings.local)} if settings.local else {}
    try:
        ipr.link("add", ifname=name, kind="vxlan", vxlan_id=settings.vni, vxlan_port=VXLAN_PORT,
                 vxlan_learning=0, vxlan_proxy=1, mtu=mtu, **extra)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            raise Conflict(f"VNI {settings.vni} is already in use by another VXLAN device on this node") from exc
        raise


def _ensure_addresses(ipr: IPRoute, idx: int, wanted: Sequence[tuple[str, int]]) -> None:
    """Exactly `wanted` on the link, the first one primary (added first)."""
    have = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=socket.AF_INET)]
    if have[:1] != list(wanted[:1]) or not set(have) <= set(wanted):
        for addr, plen in reversed(have):  # secondaries first: deleting a primary takes them along
            _quiet(ipr.addr, "del", index=idx, address=addr, prefixlen=plen)
        have = []
    for addr, plen in wanted:
        if (addr, plen) not in have:
            ipr.addr("add", index=idx, address=addr, prefixlen=plen)


def delete_overlay(*, bridge: str, vxlan: str) -> None:
    """Both devices; their FDB and neighbour entries go with them. Already gone is fine."""
    delete_link(vxlan)
    delete_link(bridge)


def sync_peers(vxlan: str, peers: Sequence[Peer]) -> None:
    """Make the VXLAN device's static FDB and neighbour entries exactly those `peers` need."""
    want_fdb, want_neigh = plan_fdb(peers), plan_neighbours(peers)
    with iproute() as ipr:
        idx = index_of(ipr, vxlan)
        if idx is None:
            raise EngineFailure(f"VXLAN device {vxlan} is missing")
        have_fdb = _fdb_of(ipr, idx)
        have_neigh = _neighbours_of(ipr, idx)
        for entry in have_fdb - want_fdb:
            _quiet(ipr.fdb, "del", ifindex=idx, lladdr=entry.mac, dst=entry.dst, flags=NTF_SELF)
        for ip in set(have_neigh) - set(want_neigh):
            _quiet(ipr.neigh, "del", ifindex=idx, dst=ip)
        # per-MAC entries first: replace moves a MAC to another VTEP; flood entries are appended
        for entry in sorted(want_fdb - have_fdb, key=lambda e: e.mac == BUM_MAC):
            verb = "append" if entry.mac == BUM_MAC else "replace"
            ipr.fdb(verb, ifindex=idx, lladdr=entry.mac, dst=entry.dst, flags=NTF_SELF, state=NUD_PERMANENT)
        for ip, mac in want_neigh.items():
            if have_neigh.get(ip) != mac:
                ipr.neigh("replace", ifindex=idx, dst=ip, lladdr=mac, state=NUD_PERMANENT)


def _quiet(call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """A delete that tolerates the entry being gone already."""
    try:
        call(*args, **kwargs)
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL):
            raise


def _fdb_of(ipr: IPRoute, idx: int) -> set[FdbEntry]:
    entries = ipr.fdb("dump", ifindex=idx)
    return {FdbEntry(e.get("NDA_LLADDR"), e.get("NDA_DST")) for e in entries
            if e.get("NDA_DST") and e["flags"] & NTF_SELF and e.get("ifindex", idx) == idx}


def _neighbours_of(ipr: IPRoute, idx: int) -> dict[str, str]:
    return {n.get("NDA_DST"): n.get("NDA_LLADDR") for n in ipr.get_neighbours(ifindex=idx, family=socket.AF_INET)
            if n["state"] & NUD_PERMANENT and n.get("NDA_LLADDR")}


def list_fdb(vxlan: str) -> set[FdbEntry]:
    """The VXLAN device's static entries (tests and inspect)."""
    with iproute() as ipr:
        idx = index_of(ipr, vxlan)
        return _fdb_of(ipr, idx) if idx is not None else set()


def list_neighbours(vxlan: str) -> dict[str, str]:
    with iproute() as ipr:
        idx = index_of(ipr, vxlan)
        return _neighbours_of(ipr, idx) if idx is not None else {}


def set_mtu(ifname: str, mtu: int, netns: Path | None = None) -> None:
    with iproute(netns) as ipr:
        idx = index_of(ipr, ifname)
        if idx is None:
            raise EngineFailure(f"{ifname} is missing")
        ipr.link("set", index=idx, mtu=mtu)
