"""How a container uses the network service (`engine.networks`, see node/network/__init__.py).

At create, `plan_endpoints` turns HostConfig.NetworkMode plus NetworkingConfig.EndpointsConfig into the
networks the container joins (kept in `Container.endpoints_config`). At every start `plumb` makes its
sandbox, connects each network and publishes its ports, releasing everything if any step fails; at exit
or removal the service's `release` undoes all of it. The views (`network_settings`, `list_fields`) are
Docker's NetworkSettings for inspect and ps. All calls here are synchronous (run them in a thread).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from ipaddress import IPv4Address, ip_address
from typing import TYPE_CHECKING, Any

from node.containers.model import Container
from node.errors import Conflict, InvalidArgument, NotFound
from node.network import ports

if TYPE_CHECKING:
    from node.network.model import Network
    from node.network.service import NetworkService

SPECIAL = ("host", "none")
_ON_DEFAULT_BRIDGE_IP = "user specified IP address is supported on user defined networks only"
_ON_DEFAULT_BRIDGE_ALIAS = "network-scoped alias is supported only for containers in user defined networks"


def network_mode(host_config: dict[str, Any]) -> str:
    mode = str(host_config.get("NetworkMode") or "default")
    return "bridge" if mode == "default" else mode


class ContainerNetworking:
    """The container service's side of networking, over a NetworkService (or anything with its calls)."""

    def __init__(self, networks: NetworkService) -> None:
        self.networks = networks

    # --- create ---------------------------------------------------------------------------------------
    def plan_endpoints(self, host_config: dict[str, Any],
                       networking_config: dict[str, Any] | None) -> tuple[str, dict[str, dict[str, Any]]]:
        """(NetworkMode, EndpointsConfig by network name): unknown networks are NotFound, bad --ip or
        --network-alias InvalidArgument, each naming what is wrong."""
        self.extra_hosts(host_config.get("ExtraHosts"))
        mode = network_mode(host_config)
        if mode.startswith("container:"):
            raise InvalidArgument(f"--network {mode}: sharing another container's network is not supported")
        requested = dict((networking_config or {}).get("EndpointsConfig") or {})
        if mode in SPECIAL:
            if any(ref != mode for ref in requested):
                raise InvalidArgument("conflicting options: cannot attach both user-defined and non-user-defined "
                                      f"network-modes (--network {mode})")
            settings = requested.get(mode) or {}
            if settings.get("Aliases"):
                raise InvalidArgument(_ON_DEFAULT_BRIDGE_ALIAS)
            if (settings.get("IPAMConfig") or {}).get("IPv4Address"):
                raise InvalidArgument(_ON_DEFAULT_BRIDGE_IP)
            return mode, {}
        primary = self.networks.find(mode)
        if primary.driver in ("host", "null"):
            return self.plan_endpoints({"NetworkMode": primary.name}, networking_config)
        planned = {primary.name: self._endpoint_config(primary, requested.pop(mode, None)
                                                       or requested.pop(primary.name, None))}
        for ref, settings in requested.items():
            network = self.networks.find(ref)
            if network.driver in ("host", "null"):
                raise InvalidArgument(f"conflicting options: cannot attach both user-defined and non-user-defined "
                                      f"network-modes (network {network.name})")
            planned[network.name] = self._endpoint_config(network, settings)
        return mode, planned

    def _endpoint_config(self, network: Network, settings: dict[str, Any] | None) -> dict[str, Any]:
        settings = dict(settings or {})
        aliases = [str(a) for a in settings.get("Aliases") or () if str(a)]
        address = str((settings.get("IPAMConfig") or {}).get("IPv4Address") or "")
        if network.name == "bridge" and aliases:
            raise InvalidArgument(_ON_DEFAULT_BRIDGE_ALIAS)
        if address:
            if network.name == "bridge":
                raise InvalidArgument(_ON_DEFAULT_BRIDGE_IP)
            try:
                parsed = ip_address(address)
            except ValueError:
                raise InvalidArgument(f"invalid --ip {address}: not an IPv4 address") from None
            if not isinstance(parsed, IPv4Address):
                raise InvalidArgument(f"invalid --ip {address}: only IPv4 is supported")
            if network.ipam is not None and parsed not in network.ipam.subnet:
                raise InvalidArgument(f"invalid --ip {address}: not in network {network.name}'s subnet "
                                      f"{network.ipam.subnet}")
        out: dict[str, Any] = {"Aliases": aliases or None,
                               "IPAMConfig": {"IPv4Address": address} if address else None}
        if settings.get("MacAddress"):
            out["MacAddress"] = str(settings["MacAddress"])
        return out

    # --- start and stop -------------------------------------------------------------------------------
    def plumb(self, c: Container) -> str:
        """Sandbox, endpoints and published ports for a start; the OCI netns ("host" or a path). On any
        failure (a host port in use, an address taken) everything made here is released first."""
        mode = network_mode(c.host_config)
        hostname = str(c.config.get("Hostname") or "")
        try:
            if mode == "host":
                self.networks.connect(c.id, "host", name=c.name)
                return "host"
            path = self.networks.create_sandbox(c.id)
            if mode == "none":
                self.networks.connect(c.id, "none", name=c.name)
                return str(path)
            for name, settings in c.endpoints_config.items():
                self.networks.connect(c.id, name, name=c.name, aliases=settings.get("Aliases") or (),
                                      ipv4_address=(settings.get("IPAMConfig") or {}).get("IPv4Address") or None,
                                      hostname=hostname, mac_address=settings.get("MacAddress") or None)
            bindings = ports.plan_host_config_bindings(
                c.host_config.get("PortBindings"), exposed=list(c.config.get("ExposedPorts") or {}),
                publish_all=bool(c.host_config.get("PublishAllPorts")))
            if bindings:
                self.networks.publish(c.id, bindings)
            return str(path)
        except BaseException:
            self.networks.release(c.id)
            raise

    def etc_files(self, c: Container) -> tuple[str, str]:
        """(/etc/hosts, /etc/resolv.conf) for the container as plumbed now; HostConfig.ExtraHosts
        (`--add-host NAME:IP`, IP `host-gateway` = the default bridge's gateway) end /etc/hosts."""
        hosts = self.networks.hosts(c.id)
        extra = [f"{address}\t{name}" for name, address in self.extra_hosts(c.host_config.get("ExtraHosts"))]
        if extra:
            hosts = hosts.rstrip("\n") + "\n" + "\n".join(extra) + "\n"
        return hosts, self.networks.resolv_conf(c.id)

    def extra_hosts(self, entries: Iterable[str] | None) -> list[tuple[str, str]]:
        """`NAME:IP` entries as (name, address); a malformed one is InvalidArgument naming it."""
        out = []
        for entry in entries or ():
            name, sep, address = str(entry).replace("=", ":", 1).partition(":")
            if address == "host-gateway":
                ipam = self.networks.find("bridge").ipam
                address = str(ipam.gateway) if ipam is not None else ""
            try:
                ip_address(address)
            except ValueError:
                raise InvalidArgument(f"invalid --add-host {entry!r}: expected NAME:IP") from None
            if not sep or not name:
                raise InvalidArgument(f"invalid --add-host {entry!r}: expected NAME:IP")
            out.append((name, address))
        return out

    def release(self, container_id: str) -> None:
        self.networks.release(container_id)

    # --- network connect / disconnect -----------------------------------------------------------------
    def plan_connect(self, c: Container, network_ref: str, *, aliases: Iterable[str],
                     ipv4_address: str | None) -> tuple[str, dict[str, Any]]:
        """(network name, its EndpointsConfig entry) for `network connect`, or why not."""
        network = self.networks.find(network_ref)
        mode = network_mode(c.host_config)
        if mode in SPECIAL or network.driver in ("host", "null"):
            raise Conflict(f"container {c.name} cannot be connected to network {network.name}: "
                           f"{'it uses --network ' + mode if mode in SPECIAL else 'host and none are exclusive'}")
        if network.name in c.endpoints_config:
            raise Conflict(f"endpoint with name {c.name} already exists in network {network.name}")
        settings = {"Aliases": list(aliases), "IPAMConfig": {"IPv4Address": ipv4_address} if ipv4_address else None}
        return network.name, self._endpoint_config(network, settings)

    def connect_live(self, c: Container, name: str, settings: dict[str, Any]) -> None:
        self.networks.connect(c.id, name, name=c.name, aliases=settings.get("Aliases") or (),
                              ipv4_address=(settings.get("IPAMConfig") or {}).get("IPv4Address") or None,
                              hostname=str(c.config.get("Hostname") or ""),
                              mac_address=settings.get("MacAddress") or None)

    def plan_disconnect(self, c: Container, network_ref: str, *, force: bool) -> str | None:
        """The network name to drop from the container's config (None: nothing to do with force)."""
        try:
            network = self.networks.find(network_ref)
        except NotFound:
            if force and network_ref in c.endpoints_config:
                return network_ref
            raise
        mode = network_mode(c.host_config)
        if mode in SPECIAL or network.driver in ("host", "null"):
            raise Conflict(f"container {c.name} cannot be disconnected from network {network.name}: "
                           f"it uses --network {mode}")
        if network.name not in c.endpoints_config:
            if force:
                return None
            raise NotFound(f"container {c.id[:12]} is not connected to network {network.name}")
        return network.name

    def disconnect_live(self, c: Container, name: str, *, force: bool) -> None:
        try:
            self.networks.disconnect(c.id, name, force=force)
        except NotFound:
            if not force:
                raise

    # --- views ----------------------------------------------------------------------------------------
    def _networks_view(self, c: Container) -> dict[str, dict[str, Any]]:
        live = self.networks.networks_of(c.id) if c.state.is_live else {}
        mode = network_mode(c.host_config)
        wanted: dict[str, dict[str, Any]] = {mode: {}} if mode in SPECIAL else dict(c.endpoints_config)
        view: dict[str, dict[str, Any]] = {}
        for name, settings in wanted.items():
            entry = live.pop(name, None) or self._blank(name)
            view[name] = {**entry, "IPAMConfig": settings.get("IPAMConfig"),
                          "Aliases": settings.get("Aliases") or entry.get("Aliases")}
        view.update(live)  # connected by other means (the network API without the container service)
        return view

    def _blank(self, name: str) -> dict[str, Any]:
        try:
            network_id = self.networks.find(name).id
        except NotFound:
            network_id = ""
        return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "NetworkID": network_id,
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}

    def network_settings(self, c: Container) -> dict[str, Any]:
        """Container inspect's NetworkSettings, as Docker shows it."""
        networks = self._networks_view(c)
        live = c.state.is_live
        sandbox = self.networks.sandbox_path(c.id) if live else None
        exposed = list(c.config.get("ExposedPorts") or {})
        default = networks.get("bridge") or {}
        return {
            "Bridge": "", "SandboxID": hashlib.sha256(str(sandbox).encode()).hexdigest() if sandbox else "",
            "SandboxKey": str(sandbox or ""), "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports.ports_view(self.networks.published(c.id), exposed) if live else {},
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": default.get("EndpointID", ""), "Gateway": default.get("Gateway", ""),
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": default.get("IPAddress", ""),
            "IPPrefixLen": default.get("IPPrefixLen", 0), "IPv6Gateway": "",
            "MacAddress": default.get("MacAddress", ""),
            "Networks": networks,
        }

    def list_fields(self, c: Container) -> dict[str, Any]:
        """`GET /containers/json` Ports and NetworkSettings for one container."""
        live = c.state.is_live
        published = self.networks.published(c.id) if live else []
        return {"Ports": ports.list_ports(published, list(c.config.get("ExposedPorts") or {})) if live else [],
                "NetworkSettings": {"Networks": self._networks_view(c)}}
