"""What a lab will be, decided without touching the kernel: names, addresses and paths of every host.

Kernel names are limited to 15 characters, so a lab name is short (1-10 of [a-z0-9], a letter first):
`<lab>-br` is the bridge, `<lab>-h<i>` both the host's network namespace and the root-side end of its
veth. Sweeps after a crash recognise a lab's objects by these exact patterns.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from orchestrator.lab.errors import LabError
from orchestrator.lab.state import LabHost, LabState

DEFAULT_NAME = "lab"
DEFAULT_SUBNET = "10.77.0.0/24"
DEFAULT_STATE_ROOT = Path("/var/lib/pyswarm-lab")
RUN_DIR = Path("/run")
MAX_HOSTS = 250
_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")


def check_lab_name(name: str) -> str:
    if not _NAME.match(name):
        raise LabError(
            f"lab name {name!r}: use 1-10 lowercase letters or digits, starting with a letter "
            "(it prefixes kernel link names, which are limited to 15 characters)"
        )
    return name


def bridge_name(lab: str) -> str:
    return f"{lab}-br"


def host_name(index: int) -> str:
    return f"h{index}"


def netns_name(lab: str, host: str) -> str:
    return f"{lab}-{host}"


def is_lab_object(lab: str, name: str) -> bool:
    """True for the names this lab gives its namespaces and links (`<lab>-br`, `<lab>-h<i>`)."""
    return re.fullmatch(rf"{re.escape(lab)}-(br|h[0-9]+)", name) is not None


def socket_path(lab: str, host: str) -> Path:
    return RUN_DIR / f"pynode-{lab}-{host}.sock"


def exec_root(lab: str, host: str) -> Path:
    return RUN_DIR / f"pynode-{lab}-{host}"


def lab_dir(state_root: Path, lab: str) -> Path:
    return state_root / lab


def parse_subnet(subnet: str, *, hosts: int) -> ipaddress.IPv4Network:
    """An IPv4 network with room for the bridge's address and one per host."""
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"invalid subnet {subnet!r}: {exc} (expected e.g. {DEFAULT_SUBNET})") from exc
    usable = network.num_addresses - 2
    if usable < hosts + 1:
        raise LabError(
            f"subnet {subnet} has {max(usable, 0)} usable addresses; {hosts} hosts and the bridge need {hosts + 1}"
        )
    return network


def plan_lab(*, name: str, hosts: int, subnet: str, state_root: Path) -> LabState:
    """The lab `lab up` will make: the bridge takes the subnet's first address, h1.. the next ones."""
    check_lab_name(name)
    if not 1 <= hosts <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {hosts}")
    network = parse_subnet(subnet, hosts=hosts)
    addresses = network.hosts()
    gateway = str(next(addresses))
    base = lab_dir(state_root, name)
    planned = []
    for index in range(1, hosts + 1):
        host = host_name(index)
        planned.append(LabHost(
            name=host, netns=netns_name(name, host), veth=netns_name(name, host), address=str(next(addresses)),
            socket=socket_path(name, host), exec_root=exec_root(name, host), base=base / host,
        ))
    return LabState(name=name, subnet=str(network), gateway=gateway, bridge=bridge_name(name),
                    state_dir=base, hosts=tuple(planned))
