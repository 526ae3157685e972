"""Networking: IPAM, bridge and macvlan drivers, nftables, embedded DNS, published ports (NetworkService).

The container service reaches it as `engine.networks` (a `NetworkService`; `fake.FakeNetworkService`
for unit tests; both satisfy `fake.SandboxNetworking`). All calls are synchronous and thread-safe.

At `create`/`start` of a container `cid` (name NAME, hostname HOST):
    --network host:   networks.connect(cid, "host", name=NAME)        # no sandbox; share the host's netns
    otherwise:        path = networks.create_sandbox(cid)             # OCI linux.namespaces network path=path
    --network none:   networks.connect(cid, "none", name=NAME)
    each network N:   networks.connect(cid, N, name=NAME, aliases=[--network-alias…], ipv4_address=--ip,
                                       hostname=HOST, mac_address=--mac-address)   # default N = "bridge"
    -p / -P:          bound = networks.publish(cid, ports.plan_bindings(specs, exposed=…, publish_all=-P))
    files:            /etc/resolv.conf = networks.resolv_conf(cid); /etc/hosts = networks.hosts(cid)
    inspect:          NetworkSettings.Networks = networks.networks_of(cid); Ports from networks.published(cid)
At stop / removal:    networks.release(cid)   # endpoints, ports, DNS listener, sandbox; idempotent
At daemon start, after adopting containers:
                      networks.restore([(cid, pid or None), …])  # keep those with a pid, free the rest
`POST /networks/{id}/connect|disconnect` call `engine.containers.connect_network(ref, network, aliases=…,
ipv4_address=…)` / `disconnect_network(ref, network, force=…)` when the container service has them (it
resolves names and calls connect/disconnect above); otherwise only full IDs with a sandbox are accepted.
"""
