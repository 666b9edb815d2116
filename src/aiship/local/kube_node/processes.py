"""The node's processes, each started in its namespaces: the namespace holder, containerd (and
the pause image imported into it), the port forwarders, the kubelet; and the processes in the
node's mount namespace."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ...support.errors import StepError, Unavailable
from ...support.paths import KUBE_TOOLS
from ...support.processes import last_line, read_pid, run, spawn
from ...support.waiting import wait_for
from .config import registry_hosts
from .layout import CONTAINERD_SOCKET, KUBELET_ROOT, NODE_NAME, NodeLayout
from .oci_layout import pause_image_layout

HOLDER = KUBE_TOOLS / "node" / "holder.sh"
NAMESPACE = "k8s.io"  # containerd's namespace for the CRI


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
