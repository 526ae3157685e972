"""Links and addresses through pyroute2: bridges, veth pairs, macvlan children, routes. Every function is
idempotent where the name says `ensure_`/`delete_`, and cleans up its own half-made objects on failure.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from node.errors import EngineFailure, InvalidArgument


@contextmanager
def iproute(netns: Path | None = None) -> Iterator[IPRoute]:
    """An IPRoute on the host (None) or inside the namespace pinned at `netns`; netlink errors mapped."""
    try:
        with IPRoute(netns=str(netns)) if netns is not None else IPRoute() as ipr:
            yield ipr
    except NetlinkError as exc:
        raise EngineFailure(f"netlink: {exc.args[1] if len(exc.args) > 1 else exc}") from exc


def index_of(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_exists(ifname: str, netns: Path | None = None) -> bool:
    with iproute(netns) as ipr:
        return index_of(ipr, ifname) is not None


def ensure_bridge(ifname: str, *, gateway: IPv4Address | None, prefixlen: int) -> None:
    """A bridge named `ifname`, up, with `gateway/prefixlen` (the only address). Half-made ones are removed."""
    with iproute() as ipr:
        created = False
        if index_of(ipr, ifname) is None:
            ipr.link("add", ifname=ifname, kind="bridge")
            created = True
        try:
            idx = index_of(ipr, ifname)
            assert idx is not None
            if gateway is not None:
                _ensure_only_address(ipr, idx, gateway, prefixlen)
            ipr.link("set", index=idx, state="up")
        except Exception:
            if created:
                delete_link(ifname)
            raise


def _ensure_only_address(ipr: IPRoute, idx: int, address: IPv4Address, prefixlen: int) -> None:
    have = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=socket.AF_INET)]
    for addr, plen in have:
        if (addr, plen) != (str(address), prefixlen):
            ipr.addr("del", index=idx, address=addr, prefixlen=plen)
    if (str(address), prefixlen) not in have:
        ipr.addr("add", index=idx, address=str(address), prefixlen=prefixlen)


def delete_link(ifname: str, netns: Path | None = None) -> None:
    """Delete a link by name; already gone is fine."""
    try:
        with iproute(netns) as ipr:
            idx = index_of(ipr, ifname)
            if idx is not None:
                ipr.link("del", index=idx)
    except EngineFailure as exc:
        if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code in (errno.ENODEV, errno.ENOENT):
            return
        raise


def add_veth(*, bridge: str, host_ifname: str, netns: Path, ifname: str) -> None:
    """A veth pair: `host_ifname` on the host enslaved to `bridge`, its peer `ifname` inside `netns`."""
    with iproute() as ipr:
        bridge_idx = index_of(ipr, bridge)
        if bridge_idx is None:
            raise EngineFailure(f"bridge {bridge} is missing")
        ipr.link("add", ifname=host_ifname, kind="veth", peer={"ifname": ifname, "net_ns_fd": str(netns)})
        try:
            idx = index_of(ipr, host_ifname)
            ipr.link("set", index=idx, master=bridge_idx, state="up")
        except Exception:
            delete_link(host_ifname)
            raise


def add_macvlan(*, parent: str, netns: Path, ifname: str, mac: str) -> None:
    """A macvlan child of `parent` in bridge mode, born on the host and moved into `netns` as `ifname`."""
    temp = "mv" + ifname[-4:] + mac.replace(":", "")[-8:]
    with iproute() as ipr:
        parent_idx = index_of(ipr, parent)
        if parent_idx is None:
            raise InvalidArgument(f"invalid subinterface vlan name {parent}: the parent interface does not exist")
        ipr.link("add", ifname=temp[:15], kind="macvlan", link=parent_idx, macvlan_mode="bridge", address=mac)
        try:
            ipr.link("set", index=index_of(ipr, temp[:15]), net_ns_fd=str(netns))
        except Exception:
            delete_link(temp[:15])
            raise
    with iproute(netns) as ipr:
        ipr.link("set", index=index_of(ipr, temp[:15]), ifname=ifname)


def configure_inside(
    *, netns: Path, ifname: str, address: IPv4Address, prefixlen: int, mac: str | None,
    gateway: IPv4Address | None,
) -> None:
    """Inside the sandbox: MAC, address, link up, and a default route via `gateway` if it has none."""
    with iproute(netns) as ipr:
        idx = index_of(ipr, ifname)
        if idx is None:
            raise EngineFailure(f"{ifname} is missing in {netns}")
        if mac:
            ipr.link("set", index=idx, address=mac)
        ipr.addr("add", index=idx, address=str(address), prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        if gateway is not None and not _has_default_route(ipr):
            ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=idx)


def ensure_default_route(*, netns: Path, ifname: str, gateway: IPv4Address) -> None:
    with iproute(netns) as ipr:
        idx = index_of(ipr, ifname)
        if idx is not None and not _has_default_route(ipr):
            ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=idx)


def _has_default_route(ipr: IPRoute) -> bool:
    return any(r["dst_len"] == 0 for r in ipr.get_routes(family=socket.AF_INET, table=254))


def links_in(netns: Path) -> list[str]:
    with iproute(netns) as ipr:
        return [link.get("IFLA_IFNAME") for link in ipr.get_links()]


def host_routes(exclude_ifaces: set[str]) -> list[IPv4Network]:
    """The host's main-table IPv4 routes except the default route and those on `exclude_ifaces`."""
    with iproute() as ipr:
        names = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.get_links()}
        out = []
        for route in ipr.get_routes(family=socket.AF_INET, table=254):
            dst, plen = route.get("RTA_DST"), route["dst_len"]
            if plen == 0 or dst is None or names.get(route.get("RTA_OIF")) in exclude_ifaces:
                continue
            out.append(IPv4Network(f"{dst}/{plen}", strict=False))
        return out
