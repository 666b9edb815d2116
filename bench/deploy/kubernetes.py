"""The Kubernetes benchmark on the local cluster's real node: the cluster's own start and stop,
deploy-to-serving, failed rollouts, requests lost while pods are replaced, the node's memory."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import psutil

from aiship.clients.kubectl import kubectl_path
from aiship.commands.deploy.kubernetes import deploy_kubernetes
from aiship.commands.deploy.release import KubernetesTarget, Release
from aiship.commands.deploy.rollout import pod_state
from aiship.local import kube_node
from aiship.local.kube_cluster import LocalCluster, down, up
from aiship.local.registry_server import LocalRegistry
from aiship.local.traffic import service_traffic
from aiship.support.errors import StepError

from .floor import docker_run_ready
from .images import REPOSITORY, Images
from .measure import Figures, rss_pss, timed

NEVER_READY_TIMEOUT = 20.0  # the deploy --timeout for the never-ready release (see README)
FAILURE_KINDS = ("bad_model", "crashing", "never_ready")
LOGS = Path("/tmp/aiship-bench-deploy-logs")  # each cluster's logs, kept after the run
TRAFFIC_LIMITS = {"max_requests": 6000, "max_seconds": 400.0}  # per traffic run


class Cluster:
    """One local cluster under STATE, its kubeconfig, and kubectl on it."""

    def __init__(self, state: Path, registry: LocalRegistry) -> None:
        self.state, self.registry = state, registry
        self.kubeconfig = state / "kubeconfig"

    def up(self) -> None:
        up(self.state, self.kubeconfig, registry_ports=(self.registry.port,))

    def down(self) -> None:
        try:
            down(self.state, self.kubeconfig)
        finally:  # the node's logs and kwokctl's outlive the run's temporary folder
            kept = LOGS / self.state.name
            kept.mkdir(parents=True, exist_ok=True)
            for source in (self.state / "node" / "logs", self.state / "kwokctl.log"):
                with contextlib.suppress(OSError):
                    if source.is_dir():
                        shutil.copytree(source, kept / source.name, dirs_exist_ok=True)
                    else:
                        shutil.copy2(source, kept / source.name)

    def kubectl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        command = [str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def namespace(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        done = self.kubectl("create", "namespace", name)
        if done.returncode != 0:
            raise StepError(f"kubectl create namespace {name}: {done.stderr.strip()}")
        return name

    def drop(self, namespace: str) -> None:
        """The namespace's pods at once (the node's CPU for the next case), then the rest."""
        self.kubectl(
            "-n",
            namespace,
            "delete",
            "deployments,replicasets,pods",
            "--all",
            "--grace-period=0",
            "--force",
        )
        self.kubectl("delete", "namespace", namespace, "--wait=false")

    def deploy(self, release: Release, namespace: str, overlay="staging", **options) -> object:
        target = KubernetesTarget(self.kubeconfig, namespace, overlay=overlay)
        return deploy_kubernetes(release, target, **{"timeout": 300, "smoke_test": True, **options})

    def traffic(self, namespace: str, **options):
        """Predictions of the digits model through the API server's proxy of the Service."""
        limits = {**TRAFFIC_LIMITS, **options}
        return service_traffic(self.kubeconfig, namespace, REPOSITORY, "digits", **limits)

    def pods(self, namespace: str) -> list[dict]:
        """The app's pods in NAMESPACE, both tracks, those on their way out too."""
        done = self.kubectl(
            "-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=aiship", "-o", "json"
        )
        return json.loads(done.stdout or "{}").get("items", [])

    def app_pods(self, namespace: str) -> int:
        return sum(
            1
            for pod in self.pods(namespace)
            if "deletionTimestamp" not in pod["metadata"]
            and pod.get("status", {}).get("phase") == "Running"
        )

    def settle(self, namespace: str, pods: int, timeout: float = 120.0) -> None:
        """Until NAMESPACE runs PODS app pods, all ready, and none is still on its way out (a
        case's leftovers would take the node's CPU from the next one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.pods(namespace)
            if len(items) == pods and all(
                "deletionTimestamp" not in pod["metadata"] and pod_state(pod) == "ready"
                for pod in items
            ):
                return
            time.sleep(1)
        raise StepError(f"{namespace} did not settle on {pods} ready pods in {timeout:g} s")

    def pull(self, releases: list[Release], timeout: float = 300.0) -> None:
        """Each release's image onto the node, through a pod that runs `true` in it: the timed
        cases start with every image there, as a real cluster's nodes mostly have them."""
        names = [f"aiship-bench-pull-{i}" for i in range(len(releases))]
        try:
            for name, release in zip(names, releases, strict=True):
                done = self.kubectl(
                    "-n", "default", "run", name, f"--image={release.image}",
                    "--restart=Never", "--command", "--", "true",
                )  # fmt: skip
                if done.returncode != 0:
                    raise StepError(f"kubectl run {name}: {done.stderr.strip()}")
            done = self.kubectl(
                "-n", "default", "wait", "--for=jsonpath={.status.phase}=Succeeded",
                f"--timeout={timeout:g}s", *(f"pod/{name}" for name in names),
                timeout=timeout + 30,
            )  # fmt: skip
            if done.returncode != 0:
                raise StepError(f"pulling the images onto the node: {done.stderr.strip()}")
        finally:
            self.kubectl("-n", "default", "delete", "pod", *names, "--ignore-not-found")


def bench_cluster_life(
    work: Path, registry: LocalRegistry, images: Images, rounds: int, figures: Figures
) -> None:
    """Per round, a fresh cluster: up cold, up warm, the first deploy with a cold image pull and
    another with the image on the node, down."""
    for i in range(rounds):
        cluster = Cluster(work / f"life-{i}", registry)
        try:
            timed(figures, "cluster up, cold (node Ready)", cluster.up, fails=False)
            timed(figures, "cluster up, warm (already running)", cluster.up, fails=False)
            cold = cluster.namespace()
            timed(
                figures,
                "kubernetes: first deploy, cold image pull",
                lambda c=cluster, ns=cold: c.deploy(images.v1, ns),
                fails=False,
            )
            cluster.drop(cold)
            warm = cluster.namespace()
            timed(
                figures,
                "kubernetes: first deploy, image on the node",
                lambda c=cluster, ns=warm: c.deploy(images.v1, ns),
                fails=False,
            )
        finally:
            timed(figures, "cluster down (one app pod running)", cluster.down, fails=False)


def bench_kubernetes(
    work: Path, registry: LocalRegistry, images: Images, rounds: int, figures: Figures
) -> None:
    cluster = Cluster(work / "main", registry)
    try:
        cluster.up()
        # Deploy to serving: v1 <-> v2, staging (one replica), the smoke test included; the
        # docker-run floor of the same image right after each, under the same conditions.
        staging = cluster.namespace()
        cluster.deploy(images.v1, staging)
        for i in range(rounds):
            target = images.v2 if i % 2 == 0 else images.v1
            timed(
                figures,
                "kubernetes: update (staging, smoke test included)",
                lambda t=target: cluster.deploy(t, staging),
                fails=False,
            )
            docker_run_ready(target.image, figures)
        # Failed rollouts back to the previous version serving (staging, no traffic).
        for _ in range(rounds):
            for kind in FAILURE_KINDS:
                timeout = {"timeout": NEVER_READY_TIMEOUT} if kind == "never_ready" else {}
                timed(
                    figures,
                    f"kubernetes: failed rollout ({kind}) to previous serving",
                    lambda k=kind, t=timeout: cluster.deploy(images.release(k), staging, **t),
                    fails=True,
                )
        cluster.drop(staging)

        # Requests lost: production (three replicas), a client looping through the Service.
        production = cluster.namespace()
        cluster.deploy(images.v1, production, overlay="production")
        current = images.v1
        for i in range(rounds):
            target = images.v2 if current is images.v1 else images.v1
            cases = [("good rolling update v1 <-> v2", target, False)]
            cases.append((f"failed rollout ({FAILURE_KINDS[i % 3]})", None, True))
            for case, release, fails in cases:
                release = release or images.release(FAILURE_KINDS[i % 3])
                options = {"overlay": "production"}
                if release is images.never_ready:
                    options["timeout"] = NEVER_READY_TIMEOUT
                with cluster.traffic(production) as traffic:
                    time.sleep(1)  # the loop runs before the rollout starts
                    seconds = timed(
                        figures,
                        f"kubernetes: production {case}",
                        lambda r=release, o=options: cluster.deploy(r, production, **o),
                        fails=fails,
                    )
                    time.sleep(1)
                figures.traffic.setdefault(case, []).append(
                    (traffic.total, len(traffic.failures), seconds)
                )
                if traffic.failures:
                    figures.notes.append(f"{case}: {traffic.failures[:3]}")
            current = target

        # Memory of the node while the three app pods run.
        time.sleep(10)
        pods = cluster.app_pods(production)
        node_memory(cluster, pods, figures)
        docker_run_ready(current.image, figures, measure_memory=True)
    finally:
        timed(figures, "cluster down (three production pods running)", cluster.down, fails=False)


def node_memory(cluster: Cluster, pods: int, figures: Figures) -> None:
    node_dir = cluster.state / "node"
    node = kube_node.NodeLayout.load(node_dir)
    running = kube_node.running(node_dir)
    in_node = kube_node.namespace_processes(node)
    cgroup = set(
        kube_node.cgroup_processes(node)
    )  # each container has a mount namespace of its own
    names = {}
    for pid in {*in_node, *cgroup}:
        with contextlib.suppress(psutil.Error):
            names[pid] = psutil.Process(pid).name()
    shims = [pid for pid in in_node if names.get(pid, "").startswith("containerd-shim")]
    pause = [pid for pid in cgroup if names.get(pid) == "pause"]
    app = [pid for pid in cgroup if pid not in pause and pid not in shims]
    for what, pids in (
        ("kubelet", [running["kubelet"]]),
        ("containerd", [running["containerd"]]),
        ("containerd shims (one per pod)", shims),
        ("pause containers (one per pod)", pause),
        (f"app containers ({pods} pods)", app),
    ):
        figures.memory.append((f"node: {what}", len(pids), *rss_pss(pids)))
    control = list(LocalCluster.at(cluster.state, cluster.kubeconfig).running().values())
    group = []
    for pid in control:
        with contextlib.suppress(psutil.Error):
            group += [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    figures.memory.append(
        ("control plane (etcd, API server, ...; for context)", len(group), *rss_pss(group))
    )
