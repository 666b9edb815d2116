"""The canary strategy, with no mesh and no controller in the cluster.

The new release runs as deployment `aiship-canary` (track canary) beside the stable one, behind the
same Service, so the replica ratio sets its share of the traffic. At each declared step the canary
is scaled to its share, watched for the step's pause, and judged against stable on the pods' own
/metrics, read through the API server's pod proxy (so it works on AKS and locally alike): error
rate, p99 latency and the mix of predicted classes (analysis.py). Any check failing, metrics that
cannot be read, or the time limit: the canary is removed and stable was never touched. Every step
passed: the caller promotes (stable rolls to the new digest, then the canary is removed).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass

import yaml

from ...clients.kubectl import Kubectl
from ...support.errors import ConfigError, RolledBack, StepError
from ...support.processes import last_line
from .analysis import Analysis, CanaryStep, PodMetrics, judge
from .release import Release
from .rollout import (
    APP,
    container_image,
    diagnose,
    http_port,
    pod_state,
    smoke_pods,
    wait_rollout,
)

log = logging.getLogger(__name__)

CANARY = f"{APP}-canary"
TRACK = "aiship.io/track"  # stable or canary: the Deployments' selectors tell them apart
UNREADABLE_IN_A_ROW = 3  # reads of /metrics that may fail in a row before the canary is aborted


class CanaryFailed(Exception):
    """Why the canary is aborted, in one line."""


@dataclass(frozen=True)
class Scrape:
    """One read of every ready pod's /metrics: pod name -> (track, metrics)."""

    pods: dict[str, tuple[str, PodMetrics]]

    def sides(self, baseline: Scrape) -> tuple[PodMetrics, PodMetrics]:
        """Canary's and stable's increase since BASELINE, summed over their pods (a pod that
        came after the baseline counts from zero)."""
        totals: dict[str, PodMetrics] = {}
        for name, (track, metrics) in self.pods.items():
            before = baseline.pods.get(name, (track, None))[1]
            increase = metrics.since(before)
            totals[track] = totals[track] + increase if track in totals else increase
        empty = PodMetrics.empty()
        return totals.get("canary", empty), totals.get("stable", empty)


def run_canary(
    kubectl: Kubectl,
    release: Release,
    deployment: dict,
    analysis: Analysis,
    timeout: float,
    smoke_test: bool,
) -> tuple[str, ...]:
    """Every step of ANALYSIS with DEPLOYMENT (the rendered stable one, new image) as canary;
    the step lines when all passed. Otherwise the canary is removed and RolledBack raised."""
    stable = kubectl.get("deployment", APP)
    pods = pods_selector(stable)
    deadline = time.monotonic() + analysis.timeout
    lines: list[str] = []
    try:
        for number, step in enumerate(analysis.steps, 1):
            stable = kubectl.get("deployment", APP) or stable  # the autoscaler may have moved it
            replicas = canary_replicas(stable["spec"].get("replicas", 1), step.weight)
            scale_canary(kubectl, deployment, replicas, min(timeout, left(deadline)))
            if number == 1 and smoke_test:
                canary = kubectl.get("deployment", CANARY)
                failure = smoke_pods(kubectl, canary, release.build, None)
                if failure:
                    raise CanaryFailed(failure)
            lines.append(watch_step(kubectl, pods, analysis, number, step, replicas, deadline))
            log.info("%s", lines[-1])
    except BaseException as exc:
        if not isinstance(exc, CanaryFailed):  # the cluster failed us, or an interrupt
            with contextlib.suppress(StepError):
                remove_canary(kubectl)
            raise
        remove_canary(kubectl)
        step = f"step {len(lines) + 1}/{len(analysis.steps)}"
        raise RolledBack(
            f"the canary of {release.image} was aborted at {step} ({exc}); stable "
            f"{container_image(stable)} serves, untouched",
            outputs={
                "target": "kubernetes",
                "image": release.image,
                "digest": release.digest,
                "result": "aborted",
                "checks": [*lines, f"{step}: {exc}"],
            },
        ) from None
    return tuple(lines)


def pods_selector(stable: dict) -> str:
    """The label selector of both tracks' pods; the stable Deployment's selector must tell its
    pods from the canary's."""
    labels = dict(stable["spec"]["selector"].get("matchLabels", {}))
    if labels.pop(TRACK, None) != "stable":
        raise ConfigError(
            f"deployment/{APP} does not select on {TRACK}: stable, so it would take the canary's "
            "pods for its own: keep that label in manifests/base/deployment.yaml's selector"
        )
    return ",".join([*(f"{key}={value}" for key, value in sorted(labels.items())), TRACK])


def canary_replicas(stable: int, weight: int) -> int:
    """Canary pods for a WEIGHT % share beside STABLE pods (at least one)."""
    return max(1, round(stable * weight / (100 - weight)))


def canary_deployment(deployment: dict, replicas: int) -> dict:
    """The rendered stable Deployment as the canary: another name and track, REPLICAS pods."""
    canary = copy.deepcopy(deployment)
    canary["metadata"]["name"] = CANARY
    canary["metadata"].setdefault("labels", {})[TRACK] = "canary"
    annotations = canary["metadata"].get("annotations", {})
    for name in [name for name in annotations if name.startswith("aiship.io/")]:
        del annotations[name]  # what deploy records on the stable Deployment, not the canary
    canary["spec"]["replicas"] = replicas
    canary["spec"]["selector"]["matchLabels"][TRACK] = "canary"
    canary["spec"]["template"]["metadata"]["labels"][TRACK] = "canary"
    return canary


def scale_canary(kubectl: Kubectl, deployment: dict, replicas: int, timeout: float) -> None:
    """Apply the canary with REPLICAS pods and wait until they are ready."""
    kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(canary_deployment(deployment, replicas)))
    failure = wait_rollout(kubectl, timeout, CANARY)
    if failure:
        for line in diagnose(kubectl, CANARY):
            log.error("  %s", line)
        raise CanaryFailed(failure)


def watch_step(
    kubectl: Kubectl,
    pods: str,
    analysis: Analysis,
    number: int,
    step: CanaryStep,
    replicas: int,
    deadline: float,
) -> str:
    """Judge the step until its pause has passed with every check passing (its line), a check
    fails, or the time limit passes (CanaryFailed)."""
    started = time.monotonic()
    baseline = scrape(kubectl, pods, deadline)
    while True:
        time.sleep(min(analysis.interval, left(deadline)))
        canary, stable = scrape(kubectl, pods, deadline).sides(baseline)
        checks = judge(analysis, canary, stable)
        seconds = time.monotonic() - started
        line = (
            f"canary step {number}/{len(analysis.steps)}: {step.weight}% "
            f"({replicas} canary pod{'s' if replicas > 1 else ''}), {seconds:.0f} s, "
            f"requests {canary.requests} canary / {stable.requests} stable: "
            + "; ".join(check.line() for check in checks)
        )
        log.debug("%s", line)
        if any(check.passed is False for check in checks):
            raise CanaryFailed(line)
        if seconds >= step.pause and all(check.passed for check in checks):
            return line
        if left(deadline) <= 0:
            raise CanaryFailed(f"the analysis's time limit ({analysis.timeout:g} s) passed: {line}")


def scrape(kubectl: Kubectl, pods: str, deadline: float) -> Scrape:
    """Every ready pod's /metrics, through the API server's pod proxy; a read that fails is
    tried again each second, UNREADABLE_IN_A_ROW times, then the canary is aborted."""
    for attempt in range(1, UNREADABLE_IN_A_ROW + 1):
        try:
            return Scrape(dict(read_pods(kubectl, pods)))
        except CanaryFailed:
            if attempt == UNREADABLE_IN_A_ROW or left(deadline) <= 0:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def read_pods(kubectl: Kubectl, selector: str):
    """(pod name, (track, metrics)) of every ready pod of either track, not on its way out."""
    for pod in (kubectl.get("pods", "-l", selector) or {"items": []})["items"]:
        if "deletionTimestamp" in pod["metadata"] or pod_state(pod) != "ready":
            continue
        name, track = pod["metadata"]["name"], pod["metadata"]["labels"][TRACK]
        port = http_port(pod["spec"])
        path = f"/api/v1/namespaces/{kubectl.namespace}/pods/{name}:{port}/proxy/metrics"
        done = kubectl.run("get", "--raw", path, check=False)
        if done.returncode != 0:
            raise CanaryFailed(
                f"cannot read /metrics of pod {name} ({last_line(done.stderr)}): the kubeconfig's "
                "user needs get on pods/proxy in the namespace"
            )
        yield name, (track, PodMetrics.parse(done.stdout))


def remove_canary(kubectl: Kubectl) -> None:
    """Delete the canary (its pods drain as any pod does: endpoints first, then preStop)."""
    kubectl.run("delete", "deployment", CANARY, "--ignore-not-found", "--wait=false")


def left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
