"""A local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
127.0.0.1, run by kwokctl from the binaries kube_build.py built, and one real node (kube_node/)
whose kubelet runs the pods' containers for real.

State lives under STATE_DIR (default: the repo's git-ignored .local/cluster): kwokctl's work folder,
its log, the node's folder, and the kubeconfig unless another is given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..clients.kubectl import Kubectl, kubectl_path
from ..support.errors import StepError, Unavailable
from ..support.paths import local_state_dir
from ..support.ports import free_port
from ..support.processes import gone, last_line, run, stop
from ..support.waiting import wait_for
from . import kube_node
from .kube_build import ETCD, KUBERNETES, KubeBinaries, ensure_binaries
from .kube_node import NODE_NAME
from .server import HOST

log = logging.getLogger(__name__)

NAME = "aiship"
# kwokctl always runs kwok's controller, which would take over every node: it is given only the
# nodes carrying this annotation, and none does.
FAKE_NODES = "kwok.x-k8s.io/node=fake"
PORTS = (  # every port a component listens on
    "etcdPort",
    "etcdPeerPort",
    "kubeApiserverPort",
    "kubeControllerManagerPort",
    "kubeSchedulerPort",
    "kwokControllerPort",
)


@dataclass(frozen=True)
class ClusterStatus:
    """Which components run (name -> pid), the API server's URL, and whether it answers."""

    running: bool
    components: Mapping[str, int]
    stopped: tuple[str, ...]
    server: str | None
    kubeconfig: str
    state_dir: str

    def outputs(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ClusterStopped:
    stopped: tuple[str, ...]
    state_dir: str

    def outputs(self) -> dict[str, object]:
        return {"stopped": list(self.stopped), "state_dir": self.state_dir}


@dataclass(frozen=True)
class LocalCluster:
    """Where one local cluster keeps its state, and the kubeconfig that reaches it."""

    state_dir: Path
    kubeconfig: Path

    @classmethod
    def at(cls, state_dir: Path | None = None, kubeconfig: Path | None = None) -> LocalCluster:
        state_dir = Path(state_dir or local_state_dir("cluster")).resolve()
        return cls(state_dir, Path(kubeconfig or state_dir / "kubeconfig").resolve())

    @property
    def workdir(self) -> Path:
        """KWOK_WORKDIR: kwokctl keeps clusters/NAME (pki, etcd data, logs, pids) below it."""
        return self.state_dir / "kwok"

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / NAME

    @property
    def pki_dir(self) -> Path:
        """kwokctl's certificates: the cluster's CA, and the admin's client certificate."""
        return self.cluster_dir / "pki"

    @property
    def pids_dir(self) -> Path:
        return self.cluster_dir / "pids"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "kwokctl.yaml"

    def kwokctl_used(self) -> Path | None:
        """The kwokctl next to the binaries the running cluster was started from."""
        with contextlib.suppress(OSError, yaml.YAMLError, KeyError, TypeError):
            options = yaml.safe_load(self.config_path.read_text())["options"]
            return Path(options["kwokControllerBinary"]).parent / "kwokctl"
        return None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "kwokctl.log"

    @property
    def node_dir(self) -> Path:
        return self.state_dir / "node"

    def pids(self) -> dict[str, int]:
        """Component name -> pid, from the pid files kwokctl wrote."""
        pids = {}
        for pid_file in sorted(self.pids_dir.glob("*.pid")):
            with contextlib.suppress(OSError, ValueError):
                pids[pid_file.stem] = int(pid_file.read_text().strip())
        return pids

    def running(self) -> dict[str, int]:
        return {name: pid for name, pid in self.pids().items() if not gone(pid)}

    def kubectl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return Kubectl(self.kubeconfig).run(*args, timeout=timeout, check=False)


def up(
    state_dir: Path | None = None,
    kubeconfig: Path | None = None,
    timeout: float = 180.0,
    binaries: KubeBinaries | None = None,
    registry_ports: tuple[int, ...] = (),
) -> ClusterStatus:
    """Start the cluster (or keep the one running) and return once its node is Ready; the node
    pulls from the registries on 127.0.0.1:REGISTRY_PORTS."""
    cluster = LocalCluster.at(state_dir, kubeconfig)
    binaries = binaries or ensure_binaries()
    kubectl_path()
    if cluster.pids() and _all_up(cluster):
        log.info("local cluster already runs (state: %s)", cluster.state_dir)
    else:
        if cluster.pids() or kube_node.NodeLayout.load(cluster.node_dir):  # from an earlier run
            down(cluster.state_dir, cluster.kubeconfig)
        kube_node.check_prerequisites()
        _create(cluster, binaries, timeout)
    try:
        if "kubelet" not in kube_node.running(cluster.node_dir):
            kube_node.stop(cluster.node_dir, kubeconfig=None)  # what a half-started one left
            api_port = int(str(_server(cluster.kubeconfig)).rsplit(":", 1)[1])
            kube_node.start(
                cluster.node_dir, cluster.kubeconfig, cluster.pki_dir, binaries, (api_port,)
            )
        for port in registry_ports:
            kube_node.forward(cluster.node_dir, port)
        wait_for(
            lambda: _node_ready(cluster) if _answers(cluster) else None,
            timeout=timeout,
            what=f"no ready API server with node {NODE_NAME} Ready "
            f"(logs: {cluster.log_path}, {cluster.node_dir / 'logs'})",
            interval=0.5,
        )
    except BaseException:
        down(cluster.state_dir, cluster.kubeconfig)
        raise
    return status(cluster.state_dir, cluster.kubeconfig)


def _create(cluster: LocalCluster, binaries: KubeBinaries, timeout: float) -> None:
    cluster.state_dir.mkdir(parents=True, exist_ok=True)
    config = cluster.config_path
    config.write_text(yaml.safe_dump(kwokctl_config(binaries, cluster.pki_dir)), encoding="utf-8")
    log.info("starting the local cluster (state: %s)", cluster.state_dir)
    try:
        _kwokctl(
            cluster,
            binaries.path("kwokctl"),
            ["create", "cluster", "--config", str(config), "--timeout", f"{timeout:.0f}s"],
            timeout=timeout + 30,
        )
    except StepError:
        down(cluster.state_dir, cluster.kubeconfig)
        raise


def kwokctl_config(binaries: KubeBinaries, pki: Path) -> dict:
    """kwokctl's configuration: our binaries, every port on 127.0.0.1, room for a real kubelet,
    which the API server reaches with a client certificate from PKI (kwokctl makes it)."""
    options = {
        "runtime": "binary",
        "bindAddress": HOST,
        "kubeVersion": binaries.versions[KUBERNETES],
        "etcdVersion": binaries.versions[ETCD].removeprefix("v"),
        "kubeApiserverBinary": str(binaries.path("kube-apiserver")),
        "kubeControllerManagerBinary": str(binaries.path("kube-controller-manager")),
        "kubeSchedulerBinary": str(binaries.path("kube-scheduler")),
        "etcdBinary": str(binaries.path("etcd")),
        "kwokControllerBinary": str(binaries.path("kwok")),
        # RBAC, as on AKS: a user without a permission the release needs meets it here first.
        "kubeAuthorization": True,
        # Ports of our choosing, so kwokctl never probes for free ones (it would bind 0.0.0.0).
        **dict(zip(PORTS, free_ports(len(PORTS)), strict=True)),
    }
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": options,
        "componentsPatches": [
            {
                "name": "kube-apiserver",
                "extraArgs": [
                    # the node's name resolves nowhere: reach its kubelet at its address
                    {"key": "kubelet-preferred-address-types", "value": "InternalIP"},
                    {"key": "kubelet-client-certificate", "value": str(pki / "admin.crt")},
                    {"key": "kubelet-client-key", "value": str(pki / "admin.key")},
                ],
            },
            {
                "name": "kwok-controller",
                "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false"},
                    {"key": "manage-nodes-with-annotation-selector", "value": FAKE_NODES},
                ],
            },
        ],
    }


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that nothing listens on right now on 127.0.0.1."""
    ports: set[int] = set()
    for _ in range(count * 10):
        ports.add(free_port())
        if len(ports) == count:
            return sorted(ports)
    raise Unavailable(f"could not find {count} free ports on {HOST}: free some, then retry")


def down(
    state_dir: Path | None = None, kubeconfig: Path | None = None, timeout: float = 60.0
) -> ClusterStopped:
    """Stop the node and every process of the control plane, and remove their state; the
    kubeconfig loses its context."""
    cluster = LocalCluster.at(state_dir, kubeconfig)
    node = kube_node.stop(cluster.node_dir, cluster.kubeconfig if _answers(cluster) else None)
    pids = cluster.pids()
    kwokctl = cluster.kwokctl_used()
    if kwokctl and cluster.cluster_dir.is_dir():
        with contextlib.suppress(StepError):  # the pids below are the proof, not its exit code
            _kwokctl(cluster, kwokctl, ["delete", "cluster"], timeout=timeout)
    for name, pid in pids.items():
        if not gone(pid):
            log.info("stopping %s (pid %d)", name, pid)
            stop(pid, name, timeout=15, group=True)
    shutil.rmtree(cluster.workdir, ignore_errors=True)  # the log stays: it tells what happened
    cluster.config_path.unlink(missing_ok=True)
    if cluster.kubeconfig == cluster.state_dir / "kubeconfig":
        cluster.kubeconfig.unlink(missing_ok=True)
    return ClusterStopped(tuple(sorted([*pids, *node])), str(cluster.state_dir))


def status(state_dir: Path | None = None, kubeconfig: Path | None = None) -> ClusterStatus:
    """Which components run (name -> pid), the API server's URL, and whether it answers."""
    cluster = LocalCluster.at(state_dir, kubeconfig)
    pids = cluster.pids()
    running = cluster.running()
    node = kube_node.running(cluster.node_dir)
    answers = bool(running) and _answers(cluster)
    return ClusterStatus(
        running=bool(pids) and running == pids and answers and "kubelet" in node,
        components={**running, **node},
        stopped=tuple(sorted(set(pids) - set(running))),
        server=_server(cluster.kubeconfig) if answers else None,
        kubeconfig=str(cluster.kubeconfig),
        state_dir=str(cluster.state_dir),
    )


def _all_up(cluster: LocalCluster) -> bool:
    return cluster.running() == cluster.pids() and cluster.kubeconfig.is_file()


def _answers(cluster: LocalCluster) -> bool:
    """The API server says it is ready (/readyz: every post-start hook done)."""
    return cluster.kubectl("get", "--raw", "/readyz", timeout=15).stdout.strip() == "ok"


def _node_ready(cluster: LocalCluster) -> bool | None:
    """The node is Ready, and the `default` namespace has its service account (pods are refused
    until the controller manager made it)."""
    done = cluster.kubectl("get", "node", NODE_NAME, "-o", "json", timeout=15)
    if done.returncode != 0:
        return None
    conditions = json.loads(done.stdout).get("status", {}).get("conditions", [])
    if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
        return None
    account = cluster.kubectl("get", "serviceaccount", "default", "-n", "default", timeout=15)
    return True if account.returncode == 0 else None


def _server(kubeconfig: Path) -> str | None:
    with contextlib.suppress(OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = context["context"]["cluster"]
        return next(c for c in config["clusters"] if c["name"] == cluster)["cluster"]["server"]
    return None


def _kwokctl(cluster: LocalCluster, kwokctl: Path, args: list[str], timeout: float) -> None:
    """Run `kwokctl --name aiship ARGS` with our work folder and kubeconfig; log to STATE/log."""
    command = [str(kwokctl), "--name", NAME, *args]
    if args[0] in ("create", "delete"):
        command += ["--kubeconfig", str(cluster.kubeconfig)]
    cluster.state_dir.mkdir(parents=True, exist_ok=True)
    what = f"`kwokctl {' '.join(args[:2])}`"
    try:
        done = run(
            command,
            what=what,
            timeout=timeout,
            env={**os.environ, "KWOK_WORKDIR": str(cluster.workdir)},
            hint=f"log: {cluster.log_path}",
        )
    finally:
        with open(cluster.log_path, "a", encoding="utf-8") as log_file:
            log_file.write(f"$ {' '.join(command)}\n")
    with open(cluster.log_path, "a", encoding="utf-8") as log_file:
        log_file.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise StepError(
            f"{what} failed (exit {done.returncode}): {last_line(done.stderr or done.stdout)} "
            f"(log: {cluster.log_path})"
        )
