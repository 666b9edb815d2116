"""The whole node: whether this machine can run it, its start and its stop (everything it made
removed), and what of it runs or is left."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from ...support.errors import ConfigError, StepError, Unavailable
from ...support.processes import gone, read_pid, run, stop_pid_file
from ...support.waiting import wait_for
from ..kube_build import KubeBinaries
from .cgroups import cgroup_folders, cgroup_processes, make_cgroups, remove_cgroups
from .config import CNI_PLUGINS, write_configs
from .layout import NODE_NAME, NodeLayout
from .network import _network_lock, free_index, make_network, remove_network
from .processes import (
    ctr,
    forward,
    import_pause_image,
    namespace_processes,
    start_containerd,
    start_holder,
    start_kubelet,
)

log = logging.getLogger(__name__)


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
    from ...clients.kubectl import Kubectl

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
