"""The node's configuration files: containerd's, the kubelet's, the CNI network's, and
containerd's hosts.toml for each registry it pulls from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from .layout import CONTAINERD_SOCKET, CONTAINERD_STATE, NodeLayout
from .network import BRIDGE
from .oci_layout import PAUSE_IMAGE

CNI_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins


def write_configs(node: NodeLayout, pki: Path) -> None:
    for folder in ("run", "logs", "containerd/root", "cni/net.d", "cni/cache"):
        node.path(folder).mkdir(parents=True, exist_ok=True)
    node.path("containerd.toml").write_text(containerd_config(node), encoding="utf-8")
    kubelet = yaml.safe_dump(kubelet_config(node, pki))
    node.path("kubelet.yaml").write_text(kubelet, encoding="utf-8")
    conflist = node.path("cni", "net.d", "10-aiship.conflist")
    conflist.write_text(json.dumps(cni_config(node), indent=2), encoding="utf-8")


def containerd_config(node: NodeLayout) -> str:
    """containerd 1.6's configuration: its state under STATE_DIR, the CRI plugin for this node."""
    root = node.state_dir
    return f"""\
version = 2
root = "{root}/containerd/root"
state = "{CONTAINERD_STATE}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{CONTAINERD_SOCKET}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # Root may lack CAP_SYS_RESOURCE (as on these machines): then runc cannot lower a container's
  # oom_score_adj below containerd's own, and every sandbox would fail to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which("runc") or "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{root}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{root}/containerd/certs.d"
"""


def kubelet_config(node: NodeLayout, pki: Path) -> dict:
    """The kubelet's KubeletConfiguration for a small node on a shared machine."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine: cgroup v1 is allowed, cgroupfs (no systemd), pods under our own root.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup_root,
        "protectKernelDefaults": True,  # read the kernel tunables, never write them
        "oomScoreAdj": 0,  # the default (-999) needs CAP_SYS_RESOURCE
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "imageServiceEndpoint": f"unix://{CONTAINERD_SOCKET}",
        # Listen on the node's own addresses only.
        "address": node.node_address,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        # Only clients with a certificate of the cluster's CA (the API server's, for logs and
        # port-forward), each request authorized by the API server, as on a real cluster.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "registerNode": True,
        "maxPods": 30,
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "resolvConf": "/etc/resolv.conf",
        "hairpinMode": "none",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
            "nodefs.inodesFree": "2%",
        },
        "imageGCHighThresholdPercent": 95,
        "imageGCLowThresholdPercent": 90,
        "shutdownGracePeriod": "0s",
        "podLogsDir": str(node.path("kubelet", "pod-logs")),
    }


def cni_config(node: NodeLayout) -> dict:
    """The pods' network: the node's bridge, addresses from the node's /24, routed by the node."""
    return {
        "cniVersion": "0.4.0",
        "name": "aiship",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": True,  # the node: it routes only to the host's veth end
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(node.path("cni", "ipam")),
                    "ranges": [[{"subnet": node.pod_subnet, "gateway": node.pod_gateway}]],
                },
            }
        ],
    }


def registry_hosts(port: int) -> str:
    """containerd's hosts.toml for the plain-HTTP registry on 127.0.0.1:PORT."""
    return (
        f'server = "http://127.0.0.1:{port}"\n\n'
        f'[host."http://127.0.0.1:{port}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
