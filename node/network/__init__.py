"""Networking: IPAM, bridge and macvlan drivers, nftables, embedded DNS, published ports (NetworkService)."""
