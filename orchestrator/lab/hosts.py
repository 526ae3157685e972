"""The lab's kernel objects, through pyroute2: the bridge, each host's network namespace and veth.

Every `ensure_*` tolerates what already exists and every `remove_*` what is already gone, so a
half-made `lab up` can be finished or undone by running either again.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from orchestrator.lab.errors import LabError
from orchestrator.lab.plan import is_lab_object
from orchestrator.lab.state import LabHost, LabState

NETNS_DIR = Path("/run/netns")
_OCTAL = re.compile(r"\\([0-7]{3})")


@contextmanager
def _netlink(action: str) -> Iterator[None]:
    """Netlink errors become LabError naming what was being done."""
    try:
        yield
    except NetlinkError as exc:
        raise LabError(f"{action}: {os.strerror(exc.code)} (netlink error {exc.code})") from exc


def find_overlaps(subnet: str) -> list[str]:
    """Addresses in the root namespace that overlap `subnet`, as `ifname a.b.c.d/n`."""
    network = ipaddress.IPv4Network(subnet)
    found = []
    with IPRoute() as ip:
        for msg in ip.get_addr(family=2):
            iface = ipaddress.IPv4Interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
            if iface.network.overlaps(network):
                found.append(f"{msg.get_attr('IFA_LABEL')} {iface}")
    return found


def find_forward_drops() -> list[str]:
    """Forward-hook chains with policy drop in the root namespace (Docker sets one): with
    bridge-nf-call-iptables=1 they also drop traffic between hosts on the lab bridge."""
    try:
        result = subprocess.run(["nft", "-j", "list", "chains"], capture_output=True, text=True, check=False)
        items = json.loads(result.stdout or "{}").get("nftables", [])
    except (OSError, ValueError):
        return []
    chains = [item["chain"] for item in items if "chain" in item]
    return [f"{c['family']} {c['table']} {c['name']}" for c in chains
            if c.get("hook") == "forward" and c.get("policy") == "drop"]


def ensure_bridge(state: LabState) -> None:
    """The lab bridge in the root namespace, holding the hosts' gateway address, up."""
    with IPRoute() as ip, _netlink(f"creating bridge {state.bridge}"):
        if not ip.link_lookup(ifname=state.bridge):
            ip.link("add", ifname=state.bridge, kind="bridge")
        index = ip.link_lookup(ifname=state.bridge)[0]
        _ensure_address(ip, index, state.gateway, state.prefixlen)
        ip.link("set", index=index, state="up")


def ensure_host_network(state: LabState, host: LabHost) -> None:
    """The host's namespace, its veth (eth0 inside, `host.veth` on the bridge), address, lo and route."""
    if not host.netns_path.exists():
        with _netlink(f"creating network namespace {host.netns}"):
            netns.create(host.netns)
    with IPRoute() as ip, _netlink(f"creating veth {host.veth}"):
        if not ip.link_lookup(ifname=host.veth):
            ip.link("add", ifname=host.veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": host.netns})
        index = ip.link_lookup(ifname=host.veth)[0]
        bridge = ip.link_lookup(ifname=state.bridge)[0]
        ip.link("set", index=index, master=bridge, state="up")
    with IPRoute(netns=host.netns, flags=0) as ns, _netlink(f"configuring eth0 in {host.netns}"):
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        eth0 = ns.link_lookup(ifname="eth0")[0]
        _ensure_address(ns, eth0, host.address, state.prefixlen)
        ns.link("set", index=eth0, state="up")
        try:
            ns.route("add", dst="0.0.0.0/0", gateway=state.gateway)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise


def _ensure_address(ip: IPRoute, index: int, address: str, prefixlen: int) -> None:
    try:
        ip.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def ensure_host_identity(host: LabHost) -> None:
    """A persistent UTS namespace (hostname = host name) and ip_forward=1 in the host's namespace."""
    host.base.mkdir(parents=True, exist_ok=True)
    if not is_mount_point(host.uts_path):
        host.uts_path.touch()
        _run(["unshare", f"--uts={host.uts_path}", "hostname", host.name], f"creating {host.name}'s UTS namespace")
    _run(["nsenter", f"--net={host.netns_path}", f"--uts={host.uts_path}", "--", "sh", "-c",
          f"hostname {host.name} && echo 1 > /proc/sys/net/ipv4/ip_forward"], f"setting up {host.netns}")


def _run(argv: list[str], action: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"{action}: `{' '.join(argv)}` exited {result.returncode}: {result.stderr.strip()}")


def is_mount_point(path: Path) -> bool:
    return str(path) in mount_points()


def mount_points() -> list[str]:
    """Mount points of the root mount namespace, unescaped (`\\040` is a space)."""
    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            points.append(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]))
    return points


def set_link_up(name: str, up: bool) -> None:
    """Bring a root-namespace link up or down: down on a host's veth cuts all its traffic."""
    with IPRoute() as ip, _netlink(f"setting {name} {'up' if up else 'down'}"):
        found = ip.link_lookup(ifname=name)
        if not found:
            raise LabError(f"link {name} does not exist; is the lab up?")
        ip.link("set", index=found[0], state="up" if up else "down")


def is_link_up(name: str) -> bool | None:
    """None when the link does not exist."""
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            return None
        flags: int = ip.link("get", index=found[0])[0]["flags"]
        return bool(flags & 1)


def remove_link(name: str) -> None:
    with IPRoute() as ip, _netlink(f"removing link {name}"):
        for index in ip.link_lookup(ifname=name):
            try:
                ip.link("del", index=index)
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise


def remove_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        netns.remove(name)


def find_lab_netns(lab: str) -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if is_lab_object(lab, n) and not n.endswith("-br"))


def find_lab_links(lab: str) -> list[str]:
    with IPRoute() as ip:
        names = [link.get_attr("IFLA_IFNAME") for link in ip.get_links()]
    return sorted(n for n in names if is_lab_object(lab, n))
