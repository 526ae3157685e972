"""Network option names of the engine's API that callers set (overlay networks, as the cluster's agent makes
them); pure names, cheap to import from anywhere."""

VNI_OPT = "com.docker.network.driver.overlay.vxlanid_list"  # Docker's name: the network's VXLAN id
MTU_OPT = "com.docker.network.driver.mtu"  # Docker's name
LOCAL_OPT = "com.pynode.network.overlay.local_ip"  # this node's VTEP address
NODE_IP_OPT = "com.pynode.network.overlay.node_ip"  # this node's own address in the overlay subnet
