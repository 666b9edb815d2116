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
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..support.errors import ConfigError, StepError, Unavailable
from ..support.paths import KUBE_TOOLS
from ..support.processes import gone, last_line, read_pid, run, spawn, stop_pid_file
from ..support.waiting import wait_for
from .kube_build import KubeBinaries

log = logging.getLogger(__name__)

NODE_NAME = "aiship-node"
PAUSE_IMAGE = "aiship.local/pause:1"  # imported, never pulled
CNI_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CGROUPS = Path("/sys/fs/cgroup")
HOLDER = KUBE_TOOLS / "node" / "holder.sh"
NODE_INTERFACE, BRIDGE = "node0", "cni0"  # inside the node's netns: no clash with the host's
# In the node's own /run (a tmpfs of its mount namespace): short paths, as a unix socket's must be
# (108 bytes), and gone with the namespace.
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CONTAINERD_STATE = "/run/containerd/state"
KUBELET_ROOT = "/run/kubelet"  # pod volumes and the kubelet's plugin sockets
NAMESPACE = "k8s.io"  # containerd's namespace for the CRI
NETWORK_LOCK = "/run/lock/aiship-node-network.lock"  # held while a node picks and makes its network
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its state, and the names and addresses it uses."""

    state_dir: Path
    index: int  # N in 10.99.N.0/30 and 10.244.N.0/24

    @property
    def tag(self) -> str:
        return hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:6]

    @property
    def netns(self) -> str:
        return f"aiship-{self.tag}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def host_interface(self) -> str:
        return f"aiship-{self.tag}"  # 13 characters: interface names have 15 at most

    @property
    def cgroup_root(self) -> str:
        return f"/aiship-{self.tag}"

    @property
    def host_address(self) -> str:
        return f"10.99.{self.index}.1"

    @property
    def node_address(self) -> str:
        return f"10.99.{self.index}.2"

    @property
    def pod_subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return f"10.244.{self.index}.1"

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def pid_file(self, name: str) -> Path:
        return self.path("run", f"{name}.pid")

    def log_file(self, name: str) -> Path:
        return self.path("logs", f"{name}.log")

    @classmethod
    def load(cls, state_dir: Path) -> NodeLayout | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return cls(state_dir, int(json.loads((state_dir / "node.json").read_text())["index"]))
        return None

    def save(self, **extra: object) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        record = {"index": self.index, **extra}
        self.path("node.json").write_text(json.dumps(record), encoding="utf-8")

    def record(self) -> dict:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.path("node.json").read_text())
        return {}


def check_prerequisites() -> None:
    """Fail in one line, before anything is made, when this machine cannot run the node."""
    if os.geteuid() != 0:
        raise ConfigError(
            "a real node needs root (network namespaces, mounts, cgroups): run as root (sudo)"
        )
    for tool, package in (("containerd", "containerd"), ("runc", "runc"), ("ctr", "containerd")):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} is not installed: install Debian's {package} (./dev setup)")
    for tool in ("ip", "nsenter", "unshare", "mount"):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} is not installed: install iproute2 and util-linux")
    if not (CNI_PLUGINS / "bridge").is_file():
        raise ConfigError(
            f"no CNI plugins in {CNI_PLUGINS}: install Debian's containernetworking-plugins "
            "(./dev setup)"
        )


def start(
    state_dir: Path,
    kubeconfig: Path,
    pki: Path,
    binaries: KubeBinaries,
    forward_ports: tuple[int, ...],
) -> NodeLayout:
    """Make and start the node; on any failure, remove what was made and raise."""
    check_prerequisites()
    with _network_lock():  # two nodes starting at once must not pick the same N
        node = NodeLayout(state_dir, free_index())
        node.save()
        try:
            make_network(node)
        except BaseException:
            stop(state_dir, kubeconfig=None)
            raise
    try:
        _start(node, kubeconfig, pki, binaries, forward_ports)
    except BaseException:
        stop(state_dir, kubeconfig=None)
        raise
    return node


def _start(
    node: NodeLayout, kubeconfig: Path, pki: Path, binaries: KubeBinaries, ports: tuple[int, ...]
) -> None:
    started = time.monotonic()
    make_cgroups(node)
    write_configs(node, pki)
    start_holder(node)
    start_containerd(node)
    import_pause_image(node, binaries.path("pause"))
    for port in ports:
        forward(node.state_dir, port)
    start_kubelet(node, kubeconfig, binaries.path("kubelet"))
    log.info("node %s started in %.1f s", NODE_NAME, time.monotonic() - started)


# Network


@contextlib.contextmanager
def _network_lock() -> Iterator[None]:
    Path(NETWORK_LOCK).parent.mkdir(parents=True, exist_ok=True)
    with open(NETWORK_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def free_index() -> int:
    """The first N whose 10.99.N.0/30 and 10.244.N.0/24 no interface or route of the host uses."""
    taken = run(["ip", "-o", "-4", "addr", "show"], what="ip addr", timeout=10).stdout
    taken += run(["ip", "-4", "route", "show", "table", "all"], what="ip route", timeout=10).stdout
    for index in range(1, 255):
        if f"10.99.{index}." not in taken and f"10.244.{index}." not in taken:
            return index
    raise Unavailable("no free 10.99.N.0/30 for a local node: stop other local nodes, then retry")


def make_network(node: NodeLayout) -> None:
    ns, host_if = node.netns, node.host_interface
    in_ns = ("ip", "-n", ns)
    commands = [
        ("ip", "netns", "add", ns),
        ("ip", "link", "add", host_if, "type", "veth", "peer", "name", NODE_INTERFACE, "netns", ns),
        ("ip", "addr", "add", f"{node.host_address}/30", "dev", host_if),
        ("ip", "link", "set", host_if, "up"),
        (*in_ns, "link", "set", "lo", "up"),
        (*in_ns, "addr", "add", f"{node.node_address}/30", "dev", NODE_INTERFACE),
        (*in_ns, "link", "set", NODE_INTERFACE, "up"),
        (*in_ns, "link", "add", BRIDGE, "type", "bridge"),
        (*in_ns, "addr", "add", f"{node.pod_gateway}/24", "dev", BRIDGE),
        (*in_ns, "link", "set", BRIDGE, "up"),
        # forwarding between the node's veth and its pods, in the node's netns alone
        ("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
        ("ip", "route", "add", node.pod_subnet, "via", node.node_address, "dev", host_if),
    ]
    for command in commands:
        _must(command, f"`{' '.join(command[:4])}`")


def remove_network(node: NodeLayout) -> None:
    """Deleting the veth removes the route through it; deleting the netns removes the rest."""
    run(["ip", "link", "del", node.host_interface], what="ip link del", timeout=10)
    if node.netns_path.exists():
        run(["ip", "netns", "del", node.netns], what="ip netns del", timeout=10)


# Cgroups


def cgroup_folders(node: NodeLayout) -> list[Path]:
    """The node's cgroup root in every hierarchy: the one v2 tree, or each of v1's, including a
    hybrid host's `unified` one (runc makes the pods' cgroups there too)."""
    if (CGROUPS / "cgroup.controllers").is_file():  # cgroup v2 only
        return [CGROUPS / node.cgroup_root.lstrip("/")]
    return [
        hierarchy / node.cgroup_root.lstrip("/")
        for hierarchy in sorted(CGROUPS.iterdir())
        if hierarchy.is_dir() and not hierarchy.is_symlink()
    ]


def make_cgroups(node: NodeLayout) -> None:
    for folder in cgroup_folders(node):
        folder.mkdir(exist_ok=True)
    cpuset = CGROUPS / "cpuset"
    if (cpuset / "cpuset.cpus").is_file():  # v1: a new cpuset has no cpus or memory nodes
        mine = cpuset / node.cgroup_root.lstrip("/")
        for name in ("cpuset.cpus", "cpuset.mems"):
            (mine / name).write_text((cpuset / name).read_text())


def remove_cgroups(node: NodeLayout) -> list[str]:
    """Remove the node's cgroups, deepest first; the ones still holding a process are named."""
    left = []
    for folder in cgroup_folders(node):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()
        if folder.is_dir():
            left.append(str(folder))
    return left


def cgroup_processes(node: NodeLayout) -> list[int]:
    """Every process in the node's cgroups (the pods' containers)."""
    pids: set[int] = set()
    for folder in cgroup_folders(node):
        for procs in folder.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    return sorted(pids)


# Configuration files


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


# Processes


def node_exec(node: NodeLayout, *command: str) -> list[str]:
    """COMMAND inside the node: its netns and its mount namespace."""
    holder = read_pid(node.pid_file("holder"))
    if holder is None:
        raise StepError(
            f"the node's namespace holder is not running (log: {node.log_file('holder')})"
        )
    return ["nsenter", "-t", str(holder), "-n", "-m", "--", *command]


def start_holder(node: NodeLayout) -> None:
    cni_cache = Path("/var/lib/cni")
    if not cni_cache.exists():  # the bind mount needs a mount point; removed again at stop
        cni_cache.mkdir(parents=True)
        node.save(**node.record(), made_var_lib_cni=True)
    command = [
        "nsenter",
        f"--net={node.netns_path}",
        "unshare",
        "--mount",
        "--propagation",
        "slave",
        "sh",
        str(HOLDER),
        str(node.path("run")),
        str(node.path("cni", "cache")),
    ]
    process = spawn(command, log_path=node.log_file("holder"), pid_path=node.pid_file("holder"))
    _wait_started(process, "the node's namespace holder", node.log_file("holder"), "ready")
    # The pid file names the holder itself (nsenter and unshare exec it).


def start_containerd(node: NodeLayout) -> None:
    command = node_exec(
        node,
        shutil.which("containerd") or "containerd",
        "--config",
        str(node.path("containerd.toml")),
    )
    process = spawn(
        command, log_path=node.log_file("containerd"), pid_path=node.pid_file("containerd")
    )

    def answers() -> bool | None:
        if process.poll() is not None:
            raise Unavailable(
                f"containerd exited with code {process.returncode}: "
                f"{last_line(node.log_file('containerd').read_text(errors='replace'))}"
            )
        done = run(ctr(node, "version"), what="ctr version", timeout=10)
        return True if done.returncode == 0 else None

    wait_for(
        answers, timeout=30, what=f"containerd did not answer (log: {node.log_file('containerd')})"
    )


def ctr(node: NodeLayout, *args: str) -> list[str]:
    return node_exec(node, "ctr", "--address", CONTAINERD_SOCKET, "--namespace", NAMESPACE, *args)


def import_pause_image(node: NodeLayout, pause: Path) -> None:
    """The pod sandbox image, made here from our own pause binary: nothing is pulled for it.
    Retried for a while: once, on a busy machine, a containerd that had just answered did not
    take the import's connection in time."""
    layout = node.path("pause.tar")
    layout.write_bytes(pause_image_layout(pause.read_bytes()))
    failures: list[str] = []

    def imported() -> bool | None:
        done = run(ctr(node, "images", "import", str(layout)), what="ctr images import", timeout=60)
        if done.returncode != 0:
            failures.append(last_line(done.stderr))
            return None
        return True

    try:
        wait_for(imported, timeout=60, what="importing the pause image", interval=1.0)
    except Unavailable:
        raise StepError(
            f"importing the pause image failed: {failures[-1] if failures else '?'} "
            f"(log: {node.log_file('containerd')})"
        ) from None


def pause_image_layout(pause: bytes) -> bytes:
    """An OCI image layout (as a tar) of one layer holding /pause, named PAUSE_IMAGE."""
    layer_tar = tar_bytes({"pause": (pause, 0o755)})
    layer = gzip.compress(layer_tar, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = _json(
        {
            "architecture": GOARCH,
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest),
                    "platform": {"architecture": GOARCH, "os": "linux"},
                    "annotations": {"io.containerd.image.name": PAUSE_IMAGE},
                }
            ],
        }
    )
    files = {
        "oci-layout": (_json({"imageLayoutVersion": "1.0.0"}), 0o644),
        "index.json": (index, 0o644),
    }
    for blob in (layer, config, manifest):
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = (blob, 0o644)
    return tar_bytes(files)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _descriptor(media_type: str, blob: bytes) -> dict:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
    }


def tar_bytes(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar of FILES (name -> (bytes, mode)), reproducible: no owners, no times."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def forward(state_dir: Path, port: int) -> None:
    """127.0.0.1:PORT inside the node reaches 127.0.0.1:PORT on the host (the API server, or a
    registry, which containerd then pulls from over plain HTTP); a no-op when it already does."""
    node = NodeLayout.load(state_dir)
    if node is None:
        raise StepError(f"no local node in {state_dir}: start it (local cluster up)")
    hosts = node.path("containerd", "certs.d", f"127.0.0.1:{port}", "hosts.toml")
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text(registry_hosts(port), encoding="utf-8")
    name = f"forward-{port}"
    if read_pid(node.pid_file(name)) is not None:
        return
    address = f"127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "aiship.local.netns_forward",
        "--netns",
        str(node.netns_path),
        f"{address}={address}",
    ]
    process = spawn(command, log_path=node.log_file(name), pid_path=node.pid_file(name))
    _wait_started(process, f"the forwarder of port {port}", node.log_file(name), "forwarding")


def start_kubelet(node: NodeLayout, kubeconfig: Path, kubelet: Path) -> None:
    command = node_exec(
        node,
        str(kubelet),
        f"--config={node.path('kubelet.yaml')}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={KUBELET_ROOT}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={node.node_address}",
        "--v=1",
    )
    spawn(command, log_path=node.log_file("kubelet"), pid_path=node.pid_file("kubelet"))


def _wait_started(process: subprocess.Popen, what: str, log_path: Path, marker: str) -> None:
    def started() -> bool | None:
        said = log_path.read_text(errors="replace") if log_path.exists() else ""
        if process.poll() is not None:
            raise Unavailable(f"{what} exited with code {process.returncode}: {last_line(said)}")
        return True if marker in said else None

    wait_for(started, timeout=15, what=f"{what} did not start (log: {log_path})", interval=0.05)


def _must(command: tuple[str, ...] | list[str], what: str) -> None:
    done = run(list(command), what=what, timeout=30)
    if done.returncode != 0:
        raise StepError(f"{what} failed: {last_line(done.stderr or done.stdout)}")


# Stop


def stop(state_dir: Path, kubeconfig: Path | None, timeout: float = 60.0) -> list[str]:
    """Stop the node and remove everything it made; the names of components that were running.
    Safe to run twice, and on a node that only half started."""
    node = NodeLayout.load(state_dir)
    if node is None:
        return []
    running = sorted(p.stem for p in node.path("run").glob("*.pid") if read_pid(p) is not None)
    if kubeconfig is not None and read_pid(node.pid_file("kubelet")) is not None:
        _drain_pods(kubeconfig, timeout)  # the kubelet stops its pods cleanly (CNI, mounts)
    stop_pid_file(node.pid_file("kubelet"), "kubelet", timeout=20)
    _remove_containers(node)
    stop_pid_file(node.pid_file("containerd"), "containerd", timeout=20)
    for pid_file in node.path("run").glob("forward-*.pid"):
        stop_pid_file(pid_file, pid_file.stem, timeout=5)
    _kill_leftovers(node)
    stop_pid_file(node.pid_file("holder"), "the node's namespace holder", timeout=5)
    left = remove_cgroups(node)
    remove_network(node)
    if node.record().get("made_var_lib_cni"):
        with contextlib.suppress(OSError):
            Path("/var/lib/cni").rmdir()
    if left:
        raise StepError(f"the node's cgroups {', '.join(left)} still hold processes: kill them")
    for path in state_dir.iterdir():  # the logs stay: they tell what happened
        if path.name != "logs":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return running


def _drain_pods(kubeconfig: Path, timeout: float) -> None:
    """Cordon the node, so that controllers cannot put replacements on it, then delete its pods
    and let the kubelet stop them cleanly (preStop, CNI teardown, unmounts)."""
    from ..clients.kubectl import Kubectl

    kubectl = Kubectl(kubeconfig)
    if kubectl.run("cordon", NODE_NAME, check=False, timeout=30).returncode != 0:
        return
    on_node = ("pods", "-A", "--field-selector", f"spec.nodeName={NODE_NAME}")
    kubectl.run("delete", *on_node, "--wait=false", check=False, timeout=30)

    def no_pods() -> bool | None:
        left = kubectl.run("get", *on_node, "-o", "name", check=False, timeout=15)
        return True if left.returncode != 0 or not left.stdout.strip() else None

    with contextlib.suppress(Unavailable):  # what is left is killed below
        wait_for(no_pods, timeout=timeout, what="the node's pods to stop", interval=0.5)


def _remove_containers(node: NodeLayout) -> None:
    """What the kubelet left in containerd: killed, then deleted."""
    if read_pid(node.pid_file("containerd")) is None:
        return
    tasks = run(ctr(node, "tasks", "ls", "-q"), what="ctr tasks ls", timeout=15).stdout.split()
    for task in tasks:
        run(ctr(node, "tasks", "kill", "-s", "SIGKILL", task), what="ctr tasks kill", timeout=15)
    for task in tasks:
        run(ctr(node, "tasks", "delete", "-f", task), what="ctr tasks delete", timeout=15)
    containers = run(ctr(node, "containers", "ls", "-q"), what="ctr containers", timeout=15)
    for container in containers.stdout.split():
        run(ctr(node, "containers", "rm", container), what="ctr containers rm", timeout=15)


def namespace_processes(node: NodeLayout) -> list[int]:
    """Every process in the node's mount namespace but its holder (containerd, its shims, the
    kubelet), or none when the holder is gone."""
    holder = read_pid(node.pid_file("holder"))
    if holder is None:
        return []
    try:
        namespace = os.readlink(f"/proc/{holder}/ns/mnt")
    except OSError:
        return []
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != holder:
            with contextlib.suppress(OSError):
                if os.readlink(proc / "ns" / "mnt") == namespace:
                    found.append(int(proc.name))
    return found


def _kill_leftovers(node: NodeLayout) -> None:
    """Anything still in the node's cgroups or its mount namespace (shims, stray containers)."""
    victims = {*cgroup_processes(node), *namespace_processes(node)}
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(Unavailable):
            wait_for(lambda pid=pid: gone(pid) or None, timeout=5, what=f"pid {pid} to end")


# Status


def running(state_dir: Path) -> dict[str, int]:
    """The node's processes that run: name -> pid."""
    node = NodeLayout.load(state_dir)
    if node is None:
        return {}
    found = {p.stem: read_pid(p) for p in sorted(node.path("run").glob("*.pid"))}
    return {name: pid for name, pid in found.items() if pid is not None}


def leftovers(state_dir: Path, record: dict) -> list[str]:
    """What of a node that was at STATE_DIR (its node.json RECORD) still exists on the host."""
    node = NodeLayout(state_dir, int(record["index"]))
    found = []
    if node.netns_path.exists():
        found.append(f"netns {node.netns}")
    if Path(f"/sys/class/net/{node.host_interface}").exists():
        found.append(f"interface {node.host_interface}")
    routes = run(["ip", "-4", "route", "show", node.pod_subnet], what="ip route", timeout=10)
    if routes.stdout.strip():
        found.append(f"route {node.pod_subnet}")
    found += [f"cgroup {folder}" for folder in cgroup_folders(node) if folder.exists()]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if str(state_dir) in line]
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and str(state_dir).encode() in (proc / "cmdline").read_bytes():
                found.append(f"process {proc.name}")
    if record.get("made_var_lib_cni") and Path("/var/lib/cni").exists():
        found.append("folder /var/lib/cni")
    found += [f"state {path}" for path in sorted(state_dir.glob("*")) if path.name != "logs"]
    return found
