"""Release timings on a local swarm and on the local Kubernetes cluster's real node: the cluster's
own start and stop, deploy-to-serving, failed rollouts back to the previous version serving,
requests lost while pods are replaced, what the node costs in memory, and the production canary:
the decision to promoted for a good candidate and to aborted for bad ones, against a plain rolling
update of the same release.

`python -m bench.deploy [--rounds N] [--only swarm|kubernetes|canary] [--pause S]` (as root: it
starts dockerd when none answers, and the node needs root). Every figure is from the same run,
next to its peer or floor: `docker run` of the same image until /v2/health/ready answers (the
container-start floor), the swarm step's own figures, and for the canary the rolling update of the
same v1 -> v2 under the same traffic. Images: model 1.0.0 and 2.0.0 built with the steps' own
`build_image` and pushed with `push_image` into docker-registry on 127.0.0.1; the broken ones
derived from v1 at the registry level (tests/kubecluster.py): a model that does not verify, a
server on another port than the probes ask (never ready), a process that exits after 3 s; and the
canary's bad candidates, ready like v1 but bad in use (tests/canary_models.py): 500 to every real
digit, 30 ms slower, a skewed prediction mix.
The cluster lives under a temporary folder in /tmp, never the repo's .local; it is stopped at the
end whatever happens. Traffic goes to 127.0.0.1 (the API server's service proxy, the swarm's
port, the docker-run floor) and from there to the pods' addresses inside the node's namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import re
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
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from aiship.clients.docker import docker
from aiship.clients.kubectl import Kubectl, kubectl_path
from aiship.clients.registry import ImageRef, RegistryLogin
from aiship.commands.build_image import ImageBuild, build_image
from aiship.commands.deploy.analysis import Analysis, load_analysis
from aiship.commands.deploy.canary import TRACK, Scrape, read_pods
from aiship.commands.deploy.kubernetes import deploy_kubernetes
from aiship.commands.deploy.release import Release
from aiship.commands.deploy.rollout import pod_state
from aiship.commands.deploy.swarm import deploy_swarm
from aiship.commands.push_image import push_image
from aiship.local import kube_node
from aiship.local.base_image import usable_base_image
from aiship.local.docker_engine import ensure_engine
from aiship.local.kube_cluster import LocalCluster, down, up
from aiship.local.registry_server import LocalRegistry
from aiship.local.traffic import digits_rows
from aiship.support import logs
from aiship.support.errors import RolledBack, StepError
from aiship.support.ports import HOST, free_port
from aiship.support.processes import run
from bench.repo import MANIFESTS, REPO_ROOT
from tests.kubecluster import KubeCluster, broken_releases, canary_releases

REPOSITORY = "aiship"
NEVER_READY_TIMEOUT = 20.0  # the deploy --timeout for the never-ready release (see README)
FAILURE_KINDS = ("bad_model", "crashing", "never_ready")
LOGS = Path("/tmp/aiship-bench-deploy-logs")  # each cluster's logs, kept after the run
TRAFFIC_LIMITS = {"max_requests": 6000, "max_seconds": 400.0}  # per traffic run
CANDIDATES = ("answers_5xx", "slow", "skewed")  # the canary's bad candidates


# Images


@dataclass(frozen=True)
class Images:
    v1: Release
    v2: Release
    bad_model: Release
    never_ready: Release
    crashing: Release
    local_tags: tuple[str, ...]  # in the docker engine, removed at the end
    # The canary's bad candidates, made only when the canary is benched.
    answers_5xx: Release | None = None
    slow: Release | None = None
    skewed: Release | None = None

    def release(self, name: str) -> Release:
        return getattr(self, name)


def make_images(work: Path, registry: LocalRegistry, candidates: bool) -> Images:
    """v1 and v2 (models 1.0.0 and 2.0.0, two code revisions) built and pushed by the steps;
    the broken variants derived from v1 in the registry, as the tests make them, and with
    CANDIDATES the canary's bad candidates too."""
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
    bad = {}
    if candidates:
        sys.path.insert(0, str(REPO_ROOT / "model"))  # tests/canary_models.py imports train
        bad = canary_releases(login, v1, work / "model-1.0.0", work / "canary-models")
    return Images(
        v1=v1,
        v2=releases["2.0.0"],
        **broken_releases(login, v1),
        **bad,
        local_tags=tuple(tags),
    )


# Measuring


@dataclass
class Figures:
    """Seconds per case, in the order they were first measured; notes on anything odd."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    traffic: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    memory: list[tuple[str, int, float, float]] = field(default_factory=list)
    canary: list[CanaryRun] = field(default_factory=list)
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

    def traffic(self, namespace: str, **options):
        view = KubeCluster(self.kubeconfig, self.state, self.registry.host)
        return view.service_traffic(namespace, **{**TRAFFIC_LIMITS, **options})

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


# The production canary


PROMOTED = "canary: v1 -> v2 to promoted"
ROLLING = "canary peer: rolling update v1 -> v2, no analysis"
STABLE = f"{TRACK}=stable"
# A step's line (canary.py's watch_step): its number, and the seconds it was watched.
STEP_LINE = re.compile(r"canary step (\d+)/\d+: .*?, (\d+) s, requests ")


def aborted(kind: str) -> str:
    return f"canary: {kind} to aborted"


@dataclass(frozen=True)
class CanaryRun:
    """One deploy of the canary bench under traffic: what it gave, what the clients saw."""

    case: str
    seconds: float
    outcome: str  # promoted, aborted, deployed, or what went wrong
    checks: tuple[str, ...]  # the step lines; for an abort, the failing one last
    phases: tuple[tuple[str, float], ...]
    sent: int
    failed: int  # client-side failures through the Service
    canary_500s: int | None  # of them, the canary's own 500s (answers_5xx: expected)
    stable_5xx: int | None  # the stable pods' 5xx on their /metrics (an abort leaves them)

    @property
    def lost(self) -> int:
        return self.failed - (self.canary_500s or 0)

    @property
    def caught_by(self) -> str:
        """The failed checks of an abort's last line, or why else it ended."""
        if self.outcome != "aborted":
            return ""
        last = self.checks[-1] if self.checks else ""
        failed = [c for c in last.split(" stable: ", 1)[-1].split("; ") if c.endswith("FAILED")]
        step = last.split(": ", 1)[0]
        return f"{step}: {'; '.join(failed)}" if failed else last


class DeployLog(logging.Handler):
    """The deploy step's INFO lines with their times: where the canary's time went."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.created, record.getMessage()))


def phases(started: float, lines: list[tuple[float, str]], ended: float) -> list[tuple[str, float]]:
    """The deploy's time from STARTED to ENDED (epoch seconds), cut at its step lines and at
    stable's apply: the time before each step's watch (the checks, the canary's pods coming up,
    the smoke test at step 1), the watch (its own whole seconds), stable's rolling update with
    its smoke test (a canary's promote), and the rest (the canary removed)."""
    out, mark = [], started
    for at, text in lines:
        step = STEP_LINE.search(text)
        if step:
            number, watched = step[1], float(step[2])
            before = "checks, canary pod up, smoke test" if number == "1" else "canary pods up"
            out.append((f"step {number}: {before}", at - watched - mark))
            out.append((f"step {number}: watched", watched))
            mark = at
        elif text.startswith("applying "):
            out.append(("to stable's apply", at - mark))
            mark = at
        elif text.startswith("deployment/") and " runs " in text:
            out.append(("stable's rolling update, smoke test", at - mark))
            mark = at
    out.append(("the rest", ended - mark))
    return out


def paced(analysis: Analysis, pause: float) -> Analysis:
    """The shipped analysis with each step watched PAUSE seconds, as the tests run it."""
    return replace(analysis, steps=tuple(replace(step, pause=pause) for step in analysis.steps))


def canary_case(
    cluster: Cluster,
    namespace: str,
    case: str,
    release: Release,
    analysis: Analysis | None,
    expect: str,
    figures: Figures,
    own_500s: bool = False,
) -> None:
    """Deploy RELEASE (with ANALYSIS: a canary) under digits traffic, 16 rows a request, through
    the Service; its time, what it ended with, what the clients and stable's pods saw. OWN_500S:
    the candidate answers 500 by design, so the 500s that stable's pods did not answer are its."""
    kubectl = Kubectl(cluster.kubeconfig, namespace)
    cluster.settle(namespace, pods=3)
    stable_before = Scrape(dict(read_pods(kubectl, STABLE)))
    handler, logger = DeployLog(), logging.getLogger("aiship.commands.deploy")
    logger.addHandler(handler)
    checks: tuple[str, ...] = ()
    try:
        with cluster.traffic(namespace, rows=digits_rows(), batch_size=16) as traffic:
            time.sleep(1)  # the loop runs before the decision
            started, wall = time.perf_counter(), time.time()
            try:
                result = cluster.deploy(release, namespace, overlay="production", canary=analysis)
                outcome, checks = result.result, result.checks
            except RolledBack as exc:
                aborts = exc.outputs.get("result") == "aborted"
                outcome = "aborted" if aborts else f"rolled back: {exc}"
                checks = tuple(exc.outputs.get("checks", ()))
            except StepError as exc:
                outcome = f"failed: {exc}"
            seconds, ended = time.perf_counter() - started, time.time()
            time.sleep(1)
    finally:
        logger.removeHandler(handler)
    lines = handler.lines + ([(ended, checks[-1])] if outcome == "aborted" and checks else [])
    stable_5xx = canary_500s = None
    if outcome == "aborted":  # stable's pods ran through it untouched: what did they answer?
        _, stable = Scrape(dict(read_pods(kubectl, STABLE))).sides(stable_before)
        stable_5xx = stable.errors
        if own_500s:
            served_500 = sum(1 for failure in traffic.failures if failure.startswith("500 "))
            canary_500s = max(0, served_500 - stable_5xx)
    measured = CanaryRun(
        case,
        seconds,
        outcome,
        tuple(checks),
        tuple(phases(wall, lines, ended)),
        traffic.total,
        len(traffic.failures),
        canary_500s,
        stable_5xx,
    )
    figures.canary.append(measured)
    if outcome == expect:
        figures.add(case, seconds)
    else:
        figures.notes.append(f"{case}: {outcome} after {seconds:.1f} s, not {expect} (not counted)")
        print(f"  {case}: UNEXPECTED {outcome}", file=sys.stderr, flush=True)
    if measured.lost:
        figures.notes.append(f"{case}: {measured.lost} requests lost, e.g. {traffic.failures[:3]}")


def bench_canary(
    work: Path,
    registry: LocalRegistry,
    images: Images,
    rounds: int,
    pause: float,
    figures: Figures,
) -> None:
    """Production (three stable pods) on a cluster of its own, v1 stable before each case: the
    bad candidates to aborted, v2 to promoted, and the rolling update of v1 -> v2 as the peer."""
    analysis = paced(load_analysis(MANIFESTS / "analysis.yaml"), pause)
    cluster = Cluster(work / "canary", registry)
    try:
        cluster.up()
        cluster.pull([images.v1, images.v2, *(images.release(kind) for kind in CANDIDATES)])
        production = cluster.namespace()
        cluster.deploy(images.v1, production, overlay="production")
        for _ in range(rounds):
            for kind in CANDIDATES:
                bad, own_500s = images.release(kind), kind == "answers_5xx"
                case = aborted(kind)
                canary_case(cluster, production, case, bad, analysis, "aborted", figures, own_500s)
            canary_case(cluster, production, PROMOTED, images.v2, analysis, "promoted", figures)
            cluster.deploy(images.v1, production, overlay="production")
            canary_case(cluster, production, ROLLING, images.v2, None, "deployed", figures)
            cluster.deploy(images.v1, production, overlay="production")
        cluster.drop(production)
    finally:
        timed(figures, "cluster down (canary run)", cluster.down, fails=False)


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
    row(ROLLING, None, "")
    for case in (PROMOTED, *map(aborted, CANDIDATES)):
        row(case, ROLLING, "rolling")
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
    if figures.canary:
        out += ["", *canary_report(figures.canary, s.get(ROLLING))]
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


def canary_report(runs: list[CanaryRun], rolling: list[float] | None) -> list[str]:
    """Each canary-bench deploy: its time over the rolling peer's median, how it ended, which
    check caught it, what the clients lost; then where its time went, and the step lines."""
    peer = statistics.median(rolling) if rolling else None
    out = [
        "| deploy under traffic | s | / rolling | result | caught by | requests sent | "
        "client failures | canary's own 500s | stable pods' 5xx | lost |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for one in runs:
        ratio = f"{one.seconds / peer:.1f}x" if peer else ""
        own = "-" if one.canary_500s is None else str(one.canary_500s)
        stable = "-" if one.stable_5xx is None else str(one.stable_5xx)
        out.append(
            f"| {one.case} | {one.seconds:.1f} | {ratio} | {one.outcome} | {one.caught_by} | "
            f"{one.sent} | {one.failed} | {own} | {stable} | {one.lost} |"
        )
    out += ["", "| deploy | where the time went (s) |", "| --- | --- |"]
    for one in runs:
        spent = "; ".join(f"{what} {seconds:.1f}" for what, seconds in one.phases)
        out.append(f"| {one.case} | {spent} |")
    out += ["", "Step lines:"]
    for one in runs:
        out += [f"- {one.case}: {line}" for line in one.checks]
    return out


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
    parser.add_argument("--only", choices=("swarm", "kubernetes", "canary"))
    parser.add_argument(
        "--pause", type=float, default=10.0, help="canary: seconds each step is watched"
    )
    args = parser.parse_args(argv)
    logs.configure()
    header = [
        f"command: python -m bench.deploy {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"started: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine()}",
        f"load average before: {load()}",
    ]
    if args.only in (None, "canary"):
        header.append(f"canary: manifests/analysis.yaml, each step's pause {args.pause:g} s")
    figures = Figures()
    engine = ensure_engine()
    try:
        with tempfile.TemporaryDirectory(prefix="aiship-bench-deploy-", dir="/tmp") as tmp:
            work = Path(tmp)
            with LocalRegistry(work / "registry") as registry:
                images = make_images(work, registry, candidates=args.only in (None, "canary"))
                try:
                    if args.only in (None, "swarm"):
                        bench_swarm(images, args.rounds, figures)
                    if args.only in (None, "kubernetes"):
                        bench_cluster_life(work, registry, images, args.rounds, figures)
                        bench_kubernetes(work, registry, images, args.rounds, figures)
                    if args.only in (None, "canary"):
                        bench_canary(work, registry, images, args.rounds, args.pause, figures)
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
