"""Networking: IPAM, bridge, macvlan and overlay drivers, nftables, embedded DNS, published ports (NetworkService).

The container service reaches it as `engine.networks` (a `NetworkService`; `fake.FakeNetworkService`
for unit tests; both satisfy `fake.SandboxNetworking`). All calls are synchronous and thread-safe.

The container side of these calls is node/containers/networking.py (ContainerNetworking).
At `create`/`start` of a container `cid` (name NAME, hostname HOST):
    --network host:   networks.connect(cid, "host", name=NAME)        # no sandbox; share the host's netns
    otherwise:        path = networks.create_sandbox(cid)             # OCI linux.namespaces network path=path
    --network none:   networks.connect(cid, "none", name=NAME)
    each network N:   networks.connect(cid, N, name=NAME, aliases=[--network-alias…], ipv4_address=--ip,
                                       hostname=HOST, mac_address=--mac-address)   # default N = "bridge"
    -p / -P:          bound = networks.publish(cid, ports.plan_host_config_bindings(HostConfig.PortBindings,
                                                    exposed=Config.ExposedPorts, publish_all=PublishAllPorts))
    files:            /etc/resolv.conf = networks.resolv_conf(cid); /etc/hosts = networks.hosts(cid)
    inspect:          NetworkSettings.Networks = networks.networks_of(cid); Ports from networks.published(cid)
At stop / removal:    networks.release(cid)   # endpoints, ports, DNS listener, sandbox; idempotent
At daemon start, after adopting containers:
                      networks.restore([(cid, pid or None), …])  # keep those with a pid, free the rest
`POST /networks/{id}/connect|disconnect` await `engine.containers.connect_network(ref, network, aliases=…,
ipv4_address=…)` / `disconnect_network(ref, network, force=…)`: the container service resolves names, keeps
the network in the container's EndpointsConfig and, if it runs, calls connect/disconnect above.

Overlay networks (overlay.py, vip.py) are made by the cluster agent exactly as the allocator decided,
through the API or these calls (EngineClient has the same: create_overlay_network, add_network_peers, ...):
    networks.create_network(NAME, driver="overlay", subnet=S, gateway=G, options={
        "com.docker.network.driver.overlay.vxlanid_list": VNI, "com.pynode.network.overlay.local_ip": VTEP,
        "com.pynode.network.overlay.node_ip": NODE_ADDR_IN_S (optional), "com.docker.network.driver.mtu": M})
    task containers connect with their allocated address: connect(cid, NAME, ipv4_address=A)
    remote tasks:     networks.add_peers(NAME, [{"IP", "MAC", "VTEP"}]) / remove_peers(NAME, [IP…] | None)
    services:         networks.set_service(NAME, SVC, {"VIP", "EndpointMode", "Backends", "Aliases", "Ports"})
                      / remove_service(NAME, SVC): DNS answers, VIP balancing in each sandbox, ingress ports
"""
