"""Release timings on a local swarm and on the local Kubernetes cluster's real node: the cluster's
own start and stop, deploy-to-serving, failed rollouts back to the previous version serving,
requests lost while pods are replaced, and what the node costs in memory.

`python -m bench.deploy [--rounds N] [--only swarm|kubernetes]` (as root: it starts dockerd when
none answers, and the node needs root). Every figure is from the same run, next to its peer or
floor: `docker run` of the same image until /v2/health/ready answers (the container-start floor),
and the swarm step's own figures. Images: model 1.0.0 and 2.0.0 built with the steps' own
`build_image` and pushed with `push_image` into docker-registry on 127.0.0.1; the broken ones
derived from v1 at the registry level (tests/kubecluster.py): a model that does not verify, a
server on another port than the probes ask (never ready), a process that exits after 3 s.
The cluster lives under a temporary folder in /tmp, never the repo's .local; it is stopped at the
end whatever happens. Traffic goes to 127.0.0.1 (the API server's service proxy, the swarm's
port, the docker-run floor) and from there to the pods' addresses inside the node's namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from steps.clients.docker import docker
from steps.clients.kubectl import kubectl_path
from steps.clients.registry import ImageRef, RegistryLogin
from steps.commands.build_image import ImageBuild, build_image
from steps.commands.deploy.kubernetes import deploy_kubernetes
from steps.commands.deploy.release import Release
from steps.commands.deploy.swarm import deploy_swarm
from steps.commands.push_image import push_image
from steps.local import kube_node
from steps.local.base_image import usable_base_image
from steps.local.docker_engine import ensure_engine
from steps.local.kube_cluster import LocalCluster, down, up
from steps.local.registry_server import LocalRegistry
from steps.local.server import HOST, free_port
from steps.support import logs
from steps.support.errors import RolledBack, StepError
from steps.support.paths import REPO_ROOT
from steps.support.processes import run
from tests.kubecluster import KubeCluster, broken_releases

REPOSITORY = "aiship"
NEVER_READY_TIMEOUT = 20.0  # the deploy --timeout for the never-ready release (see README)
FAILURE_KINDS = ("bad_model", "crashing", "never_ready")
LOGS = Path("/tmp/aiship-bench-deploy-logs")  # each cluster's logs, kept after the run
TRAFFIC_LIMITS = {"max_requests": 6000, "max_seconds": 400.0}  # per traffic run


# Images


@dataclass(frozen=True)
class Images:
    v1: Release
    v2: Release
    bad_model: Release
    never_ready: Release
    crashing: Release
    local_tags: tuple[str, ...]  # in the docker engine, removed at the end

    def release(self, name: str) -> Release:
        return getattr(self, name)


def make_images(work: Path, registry: LocalRegistry) -> Images:
    """v1 and v2 (models 1.0.0 and 2.0.0, two code revisions) built and pushed by the steps;
    the broken variants derived from v1 in the registry, as the tests make them."""
    base = usable_base_image()
    login = RegistryLogin(registry.host)
    releases, tags = {}, []
    for version, revision in (("1.0.0", "1" * 40), ("2.0.0", "2" * 40)):
        model = work / f"model-{version}"
        run(
            [
                sys.executable,
                str(REPO_ROOT / "model" / "train.py"),
                "--out",
                str(model),
                "--version",
                version,
            ],
            what="training the sample model",
            timeout=300,
        )
        local = f"aiship-bench:{version}-{uuid.uuid4().hex[:6]}"
        built = build_image(
            ImageBuild(model_dir=model, base_image=base, tags=(local,), revision=revision)
        )
        target = ImageRef.parse(f"{registry.host}/{REPOSITORY}:{version}")
        digest = push_image(login, target, source=local).digest
        tags += [local, str(target)]
        releases[version] = Release(
            f"{target.name}@{digest}", revision, built.card.version, built.card.sha256
        )
    v1 = releases["1.0.0"]
    return Images(
        v1=v1,
        v2=releases["2.0.0"],
        **broken_releases(login, v1),
        local_tags=tuple(tags),
    )


# Measuring


@dataclass
class Figures:
    """Seconds per case, in the order they were first measured; notes on anything odd."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    traffic: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    memory: list[tuple[str, int, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, case: str, value: float) -> None:
        self.seconds.setdefault(case, []).append(value)
        print(f"  {case}: {value:.1f} s", file=sys.stderr, flush=True)


def timed(figures: Figures, case: str, action: Callable[[], object], fails: bool) -> float:
    """Seconds ACTION took, recorded under CASE; a deploy that should fail must roll back."""
    started = time.perf_counter()
    outcome = "returned"
    try:
        action()
    except RolledBack:
        outcome = "rolled back"
    except StepError as exc:
        outcome = f"failed: {exc}"
    seconds = time.perf_counter() - started
    if outcome != ("rolled back" if fails else "returned"):
        figures.notes.append(f"{case}: {outcome} after {seconds:.1f} s (not counted)")
        print(f"  {case}: UNEXPECTED {outcome}", file=sys.stderr, flush=True)
        return seconds
    figures.add(case, seconds)
    return seconds


def rss_pss(pids: list[int]) -> tuple[float, float]:
    """RSS and PSS summed over PIDS, MiB (shared pages count in each process's RSS)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
    return rss / 2**20, pss / 2**20


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return True
        time.sleep(0.05)
    return False


# The container-start floor: docker run


def docker_run_ready(image: str, figures: Figures, measure_memory: bool = False) -> None:
    """`docker run` of IMAGE (host network, 127.0.0.1, a free port, two workers as the pods) until
    /v2/health/ready answers; with MEASURE_MEMORY, the container's and its shim's RSS."""
    port = free_port()
    name = f"aiship-bench-floor-{port}"
    started = time.perf_counter()
    try:
        docker(
            [
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "host",
                "-e",
                f"HOST={HOST}",
                "-e",
                f"PORT={port}",
                "-e",
                "WORKERS=2",
                image,
            ],
            timeout=60,
        )
        if not wait_http(f"http://{HOST}:{port}/v2/health/ready", 120):
            figures.notes.append(f"docker run of {image} was not ready within 120 s")
            return
        figures.add("docker run until ready (floor)", time.perf_counter() - started)
        if measure_memory:
            time.sleep(5)  # as long as the pods have been up, at least: past the warm-up
            pid = int(docker(["inspect", "--format", "{{.State.Pid}}", name]).strip())
            root = psutil.Process(pid)
            app = [pid, *(c.pid for c in root.children(recursive=True))]
            shim = root.parent()
            figures.memory.append(("docker run: the app container", len(app), *rss_pss(app)))
            figures.memory.append(("docker run: its containerd shim", 1, *rss_pss([shim.pid])))
    finally:
        docker(["rm", "-f", name], check=False, timeout=60)


# Swarm


def bench_swarm(images: Images, rounds: int, figures: Figures) -> None:
    service, port = f"aiship-bench-{free_port()}", free_port()
    options = {"service": service, "port": port}
    try:
        deploy_swarm(images.v1, **options)
        for i in range(rounds):
            target = images.v2 if i % 2 == 0 else images.v1
            timed(
                figures,
                "swarm: update (smoke test included)",
                lambda t=target: deploy_swarm(t, smoke_test=True, **options),
                fails=False,
            )
            for kind in ("bad_model", "crashing"):
                timed(
                    figures,
                    f"swarm: failed update ({kind}) to previous serving",
                    lambda k=kind: deploy_swarm(images.release(k), smoke_test=True, **options),
                    fails=True,
                )
    finally:
        docker(["service", "rm", service], check=False)


# Kubernetes


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

    def deploy(self, release: Release, namespace: str, **options) -> object:
        return deploy_kubernetes(
            release,
            kubeconfig=self.kubeconfig,
            namespace=namespace,
            **{"overlay": "staging", "timeout": 300, "smoke_test": True, **options},
        )

    def traffic(self, namespace: str):
        view = KubeCluster(self.kubeconfig, self.state, self.registry.host)
        return view.service_traffic(namespace, **TRAFFIC_LIMITS)

    def app_pods(self, namespace: str) -> int:
        done = self.kubectl(
            "-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=aiship", "-o", "json"
        )
        items = json.loads(done.stdout or "{}").get("items", [])
        return sum(
            1
            for pod in items
            if "deletionTimestamp" not in pod["metadata"]
            and pod.get("status", {}).get("phase") == "Running"
        )


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


# Report


def stats(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{statistics.median(values):.1f} | {low:.1f} | {high:.1f} | {len(values)}"


def report(figures: Figures) -> str:
    s = figures.seconds
    out = [
        "| case | median s | min s | max s | n | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(case: str, peer: str | None, peer_name: str) -> None:
        if case not in s:
            return
        ratio = ""
        if peer and peer in s:
            ratio = f"{statistics.median(s[case]) / statistics.median(s[peer]):.1f}x {peer_name}"
        out.append(f"| {case} | {stats(s[case])} | {ratio} |")

    for case in (
        "cluster up, cold (node Ready)",
        "cluster up, warm (already running)",
        "cluster down (one app pod running)",
        "cluster down (three production pods running)",
    ):
        row(case, None, "")
    floor = "docker run until ready (floor)"
    row(floor, None, "")
    for case in (
        "kubernetes: update (staging, smoke test included)",
        "kubernetes: first deploy, cold image pull",
        "kubernetes: first deploy, image on the node",
        "swarm: update (smoke test included)",
    ):
        row(case, floor, "floor")
    for kind in FAILURE_KINDS:
        peer = f"swarm: failed update ({kind}) to previous serving"
        row(f"kubernetes: failed rollout ({kind}) to previous serving", peer, "swarm")
    for kind in ("bad_model", "crashing"):
        row(f"swarm: failed update ({kind}) to previous serving", None, "")
    for case in s:
        if case.startswith("kubernetes: production"):
            row(case, None, "")
    listed = {line.split(" | ")[0][2:] for line in out}
    out += [f"| {case} | {stats(v)} | |" for case, v in s.items() if case not in listed]

    if figures.traffic:
        out += [
            "",
            "| during | rollouts | requests sent | failed | rollout s, median |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for case, runs in figures.traffic.items():
            sent, failed = sum(r[0] for r in runs), sum(r[1] for r in runs)
            median = statistics.median(r[2] for r in runs)
            out.append(f"| {case} | {len(runs)} | {sent} | {failed} | {median:.1f} |")
    if figures.memory:
        out += [
            "",
            "| process group | processes | RSS MiB | PSS MiB |",
            "| --- | ---: | ---: | ---: |",
        ]
        for what, count, rss, pss in figures.memory:
            out.append(f"| {what} | {count} | {rss:.0f} | {pss:.0f} |")
    if figures.notes:
        out += ["", "Notes:", *(f"- {note}" for note in figures.notes)]
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{socket.gethostname()}: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("swarm", "kubernetes"))
    args = parser.parse_args(argv)
    logs.configure()
    header = [
        f"command: python -m bench.deploy {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"started: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine()}",
        f"load average before: {load()}",
    ]
    figures = Figures()
    engine = ensure_engine()
    try:
        with tempfile.TemporaryDirectory(prefix="aiship-bench-deploy-", dir="/tmp") as tmp:
            work = Path(tmp)
            with LocalRegistry(work / "registry") as registry:
                images = make_images(work, registry)
                try:
                    if args.only in (None, "swarm"):
                        bench_swarm(images, args.rounds, figures)
                    if args.only in (None, "kubernetes"):
                        bench_cluster_life(work, registry, images, args.rounds, figures)
                        bench_kubernetes(work, registry, images, args.rounds, figures)
                finally:
                    docker(["rmi", "--no-prune", *images.local_tags], check=False, timeout=120)
    finally:
        if engine.started:
            engine.stop()
    header.append(f"load average after: {load()}")
    print("\n".join(header) + "\n\n" + report(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
