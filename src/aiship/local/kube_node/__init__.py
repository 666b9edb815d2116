"""One real Kubernetes node on this machine: the pinned kubelet, Debian's containerd, runc and CNI
plugins, in namespaces of their own, joined to the local control plane (kube_cluster.py).

What it makes, and `stop` removes (root only):
- network: a netns, a veth pair 10.99.N.1/30 (host) <-> 10.99.N.2/30 (node), a pod bridge
  10.244.N.1/24 inside the netns, forwarding inside the netns only, and on the host one route to
  the pod network through the node (the API server's pod and service proxies reach pods, as
  AKS's do). No default route, no NAT; no sysctl of the host is written.
- a forwarder inside the netns for the API server's and each registry's 127.0.0.1 port, to the
  same port on the host (netns_forward.py): image names and the kubeconfig are the same inside;
- a mount namespace kept by tools/kube/node/holder.sh: the node's own /run, /var/lib/cni, sysfs and
  the kernel tunables the kubelet reads; containerd, the shims, runc and the kubelet run in it;
- a cgroup of its own in each hierarchy, the kubelet's cgroupRoot, under which every pod lives;
- the pause image, built from tools/kube/node/pause and imported into containerd.

The package, one module a concern:
- layout.py: where a node keeps its state, and the names and addresses it uses (NodeLayout);
- network.py: the netns, the veth pair, the pod bridge and the host's route to the pods;
- cgroups.py: the node's cgroup in each hierarchy;
- config.py: containerd's, the kubelet's and the CNI network's configuration files;
- oci_layout.py: the pause image as an OCI image layout;
- processes.py: the namespace holder, containerd, the forwarders and the kubelet;
- lifecycle.py: whether this machine can run a node, its start, its stop, and its status.
"""

from __future__ import annotations

from .cgroups import cgroup_processes
from .layout import NODE_NAME, NodeLayout
from .lifecycle import check_prerequisites, leftovers, running, start, stop
from .oci_layout import PAUSE_IMAGE, tar_bytes
from .processes import forward, namespace_processes

__all__ = [
    "NODE_NAME",
    "PAUSE_IMAGE",
    "NodeLayout",
    "cgroup_processes",
    "check_prerequisites",
    "forward",
    "leftovers",
    "namespace_processes",
    "running",
    "start",
    "stop",
    "tar_bytes",
]
