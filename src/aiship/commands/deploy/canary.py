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
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

import yaml

from ...clients.kubectl import Kubectl
from ...support.errors import ConfigError, RolledBack, StepError
from ...support.interrupts import Interrupted, deferred
from ...support.processes import last_line
from .analysis import Analysis, CanaryStep, PodMetrics, judge
from .canary_state import PASSED, STATE_ANNOTATION, CanaryState
from .release import Release
from .rollout import (
    APP,
    container_image,
    container_statuses,
    diagnose,
    http_port,
    pod_state,
    smoke_pods,
    wait_rollout,
)

log = logging.getLogger(__name__)

CANARY = f"{APP}-canary"
TRACK = "aiship.io/track"  # stable or canary: the Deployments' selectors tell them apart
# Seconds an abort tries to remove the canary: short when cancelled (the runner's SIGKILL comes
# seconds after its SIGINT), longer after a failure (the API server may be coming back).
CLEANUP_SECONDS_INTERRUPTED = 5
CLEANUP_SECONDS = 30
READ_TIMEOUT = 15  # seconds one read of the pods may take (an API server gone does not answer)


class CanaryFailed(Exception):
    """Why the canary is aborted, in one line."""


@dataclass(frozen=True)
class Scrape:
    """One read of every ready pod's /metrics: pod name -> (track, metrics); and each pod's
    restarts then (its containers' together)."""

    pods: dict[str, tuple[str, PodMetrics]]
    restarts: dict[str, int] = field(default_factory=dict)
    tracks: dict[str, str] = field(default_factory=dict)  # every pod listed, ready or not

    @classmethod
    def of(cls, kubectl: Kubectl, pods: list[dict]) -> Scrape:
        """The metrics of PODS (`kubectl get pods` items) that are ready."""
        return cls(
            dict(read_pods(kubectl, pods)),
            {
                pod["metadata"]["name"]: sum(
                    s.get("restartCount", 0) for s in container_statuses(pod)
                )
                for pod in pods
            },
            {pod["metadata"]["name"]: pod["metadata"]["labels"][TRACK] for pod in pods},
        )

    def sides(self, baseline: Scrape) -> tuple[PodMetrics, PodMetrics]:
        """Canary's and stable's increase since BASELINE, summed over their pods."""
        return Tally.starting(baseline).add(self).sides()


@dataclass
class Tally:
    """What each pod served since a step began, added up read by read as Prometheus's rate()
    does, so no request is lost: a counter that went down, or a pod that restarted, counts its
    new value whole; a pod that went keeps what it served; one that came counts from zero."""

    last: dict[str, tuple[str, PodMetrics]]  # each pod's last reading
    restarts: dict[str, int]
    served: dict[str, tuple[str, PodMetrics]] = field(default_factory=dict)

    @classmethod
    def starting(cls, baseline: Scrape) -> Tally:
        return cls(dict(baseline.pods), dict(baseline.restarts))

    def add(self, reading: Scrape) -> Tally:
        for name, (track, metrics) in reading.pods.items():
            before = self.last.get(name)
            restarted = reading.restarts.get(name, 0) > self.restarts.get(name, 0)
            increase = metrics.since(None if before is None or restarted else before[1])
            served = self.served.get(name, (track, PodMetrics.empty()))[1]
            self.served[name] = (track, served + increase)
            self.last[name] = (track, metrics)
        self.restarts.update(reading.restarts)
        return self

    def sides(self) -> tuple[PodMetrics, PodMetrics]:
        """Canary's and stable's served, summed over their pods, the gone ones included."""
        totals = {"canary": PodMetrics.empty(), "stable": PodMetrics.empty()}
        for track, served in self.served.values():
            totals[track] = totals[track] + served
        return totals["canary"], totals["stable"]


def run_canary(
    kubectl: Kubectl,
    release: Release,
    deployment: dict,
    analysis: Analysis,
    timeout: float,
    smoke_test: bool,
    resume: CanaryState | None = None,
) -> tuple[str, ...]:
    """Every step of ANALYSIS with DEPLOYMENT (the rendered stable one, new image) as canary,
    after the steps RESUME (a canary left by an earlier run) records as passed; the step lines
    when all passed. Otherwise, cancelled included, the canary is removed and RolledBack
    raised. Each verdict is written on the canary before the next step starts."""
    kubectl = replace(kubectl, patience=analysis.unhealthy_seconds)  # an outage is ridden out
    stable = kubectl.get("deployment", APP)
    pods = pods_selector(stable)
    lifetime = analysis.timeout + timeout  # the analysis, then the promotion
    if resume is not None:
        state = resume.resumed(lifetime)
        log.info(
            "resuming the canary of %s after step %d/%d, judged by %s",
            release.image,
            len(state.steps),
            len(analysis.steps),
            resume.run,
        )
    else:
        state = CanaryState.start(release.image, container_image(stable) or "", lifetime)
    lines = [f"{step.line} (judged by {step.run})" for step in state.steps]
    deadline = time.monotonic() + analysis.timeout
    try:
        for number, step in enumerate(analysis.steps, 1):
            if number <= len(state.steps):
                continue
            stable = kubectl.get("deployment", APP) or stable  # the autoscaler may have moved it
            replicas = canary_replicas(stable["spec"].get("replicas", 1), step.weight)
            wait = min(timeout, left(deadline))
            scale_canary(kubectl, deployment, replicas, wait, state, analysis.unhealthy_seconds)
            if number == len(state.steps) + 1 and smoke_test:
                canary = kubectl.get("deployment", CANARY)
                failure = smoke_pods(kubectl, canary, release.build, None)
                if failure:
                    raise CanaryFailed(failure)
            line = watch_step(kubectl, pods, analysis, number, step, replicas, deadline)
            state = state.judged(number, step.weight, PASSED, line)
            record_state(kubectl, state)
            lines.append(line)
            log.info("%s", line)
    except BaseException as exc:
        failure = abort_reason(exc)
        if failure is None:  # not the canary's doing nor the cluster's: a defect of ours
            with contextlib.suppress(StepError):
                remove_canary(kubectl)
            raise
        step = f"step {len(lines) + 1}/{len(analysis.steps)}"
        short = isinstance(exc, KeyboardInterrupt)  # the runner's SIGKILL follows in seconds
        error = canary_removed(kubectl, CLEANUP_SECONDS_INTERRUPTED if short else CLEANUP_SECONDS)
        gone = what_became(kubectl, error)
        raise RolledBack(
            f"the canary of {release.image} was aborted at {step} ({failure}); {gone}; stable "
            f"{container_image(stable)} serves, untouched",
            outputs={
                "target": "kubernetes",
                "image": release.image,
                "digest": release.digest,
                "result": "aborted",
                "checks": [*lines, f"{step}: {failure}"],
            },
        ) from None
    return tuple(lines)


def abort_reason(exc: BaseException) -> str | None:
    """Why the canary stops, for its abort line: its own failure, the cluster's, a cancel; None
    for anything else (a defect, re-raised as it is)."""
    if isinstance(exc, CanaryFailed):
        return str(exc)
    if isinstance(exc, Interrupted):
        return f"interrupted by {exc.signal_name}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, StepError):
        return f"the cluster failed the analysis: {exc}"
    return None


def resumable(
    kubectl: Kubectl, release: Release, stable_image: str | None, analysis: Analysis | None
) -> CanaryState | None:
    """A canary left in the namespace, settled before anything else: its state when this deploy
    can carry on after its last judged step; otherwise it is removed, saying why, and None."""
    leftover = kubectl.get("deployment", CANARY)
    if leftover is None:
        return None
    state = CanaryState.of(leftover)
    why = why_not_resume(state, release, stable_image, analysis)
    if why is None:
        return state
    left_by = state.describe() if state else f"deployment/{CANARY}"
    log.warning("removing the %s: %s", left_by, why)
    remove_canary(kubectl)
    return None


def why_not_resume(
    state: CanaryState | None,
    release: Release,
    stable_image: str | None,
    analysis: Analysis | None,
    moment: datetime | None = None,
) -> str | None:
    """Why a deploy of RELEASE may not carry on with a canary left in STATE; None when it may:
    the same release, against the same stable, under the same steps, not expired."""
    if analysis is None:
        return "this deploy rolls out without one"
    if state is None:
        return f"it records no state ({STATE_ANNOTATION}), so no step of it counts as judged"
    if state.expired(moment):
        return f"it expired at {state.expires}"
    if state.image != release.image:
        return f"it belongs to {state.image}, not to this release"
    if state.stable != stable_image:
        return f"it was judged against {state.stable}, and stable now runs {stable_image}"
    weights = [step.weight for step in analysis.steps]
    if [step.weight for step in state.passed] != weights[: len(state.passed)]:
        return "the analysis's steps changed since it was judged"
    return None


def record_state(kubectl: Kubectl, state: CanaryState) -> None:
    """Write STATE on the canary: a step is judged once this is done."""
    pairs = [f"{name}={value}" for name, value in state.annotation().items()]
    kubectl.run("annotate", "--overwrite", f"deployment/{CANARY}", *pairs)


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


def canary_deployment(deployment: dict, replicas: int, state: CanaryState) -> dict:
    """The rendered stable Deployment as the canary: another name and track, REPLICAS pods,
    STATE on it."""
    canary = copy.deepcopy(deployment)
    canary["metadata"]["name"] = CANARY
    canary["metadata"].setdefault("labels", {})[TRACK] = "canary"
    annotations = canary["metadata"].setdefault("annotations", {})
    for name in [name for name in annotations if name.startswith("aiship.io/")]:
        del annotations[name]  # what deploy records on the stable Deployment, not the canary
    annotations.update(state.annotation())
    canary["spec"]["replicas"] = replicas
    canary["spec"]["selector"]["matchLabels"][TRACK] = "canary"
    canary["spec"]["template"]["metadata"]["labels"][TRACK] = "canary"
    return canary


def scale_canary(
    kubectl: Kubectl,
    deployment: dict,
    replicas: int,
    timeout: float,
    state: CanaryState,
    node_patience: float,
) -> None:
    """Apply the canary with REPLICAS pods and STATE, and wait until its pods are ready (a pod
    with no working node fails it after NODE_PATIENCE seconds, not at TIMEOUT)."""
    canary = canary_deployment(deployment, replicas, state)
    kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump(canary))
    failure = wait_rollout(kubectl, timeout, CANARY, node_patience)
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
    fails, a canary pod restarts or goes, the cluster stays unhealthy for the analysis's
    unhealthySeconds, or the time limit passes (CanaryFailed)."""
    started = time.monotonic()
    kubectl = replace(kubectl, patience=0.0)  # each read is tried once: StepHealth keeps time
    health = StepHealth(analysis.unhealthy_seconds)
    baseline = health.read(kubectl, pods, None)
    while baseline is None:
        if left(deadline) <= 0:
            raise CanaryFailed(f"the analysis's time limit ({analysis.timeout:g} s) passed")
        time.sleep(min(analysis.interval, left(deadline)))
        baseline = health.read(kubectl, pods, None)
    tally = Tally.starting(baseline)
    while True:
        time.sleep(min(analysis.interval, left(deadline)))
        reading = health.read(kubectl, pods, baseline)
        if reading is None:
            continue
        canary, stable = tally.add(reading).sides()
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


class Unhealthy(Exception):
    """The cluster failed one read of a step; tolerated for a while (StepHealth)."""


@dataclass
class StepHealth:
    """A step's reads of the pods: what the cluster may fail for up to SECONDS in a row (the API
    server, a pod's /metrics, a canary pod not ready), and what fails the step at once (a
    canary pod that restarted or went, no right to read the metrics)."""

    seconds: float
    since: float | None = None  # when the reads began to fail, this time

    def read(self, kubectl: Kubectl, selector: str, baseline: Scrape | None) -> Scrape | None:
        """The pods' metrics, or None after a failed read that is still within the bound."""
        try:
            listed = listed_pods(kubectl, selector)
            reading = Scrape.of(kubectl, listed)
            if baseline is not None:
                check_canary_pods(listed, reading, baseline)
        except (Unhealthy, StepError) as exc:
            self.since = self.since or time.monotonic()
            unhealthy = time.monotonic() - self.since
            if unhealthy >= self.seconds:
                raise CanaryFailed(f"{exc}, for {unhealthy:.0f} s") from None
            log.warning("%s; trying again (for up to %g s)", exc, self.seconds)
            return None
        self.since = None
        return reading


def listed_pods(kubectl: Kubectl, selector: str) -> list[dict]:
    return (kubectl.get("pods", "-l", selector, timeout=READ_TIMEOUT) or {"items": []})["items"]


def scrape(kubectl: Kubectl, selector: str) -> Scrape:
    """One read of the pods SELECTOR picks."""
    return Scrape.of(kubectl, listed_pods(kubectl, selector))


def check_canary_pods(pods: list[dict], reading: Scrape, baseline: Scrape) -> None:
    """A canary pod that restarted or went since the step began fails it (CanaryFailed); one not
    ready is the cluster's trouble for now (Unhealthy)."""
    by_name = {pod["metadata"]["name"]: pod for pod in pods}
    for name, track in baseline.tracks.items():
        if track != "canary":
            continue  # a stable pod's restart resets its counters only (Tally)
        restarts = baseline.restarts.get(name, 0)
        pod = by_name.get(name)
        if pod is None or "deletionTimestamp" in pod["metadata"]:
            raise CanaryFailed(f"canary pod {name} went during the step")
        if reading.restarts.get(name, 0) > restarts:
            statuses = container_statuses(pod)
            last = next(
                (
                    s["lastState"]["terminated"]
                    for s in statuses
                    if s.get("lastState", {}).get("terminated")
                ),
                {},
            )
            raise CanaryFailed(
                f"canary pod {name} restarted during the step (last exit: "
                f"{last.get('reason', '?')}, code {last.get('exitCode', '?')})"
            )
        if pod_state(pod) != "ready":
            raise Unhealthy(f"canary pod {name} is {pod_state(pod)}")


def read_pods(kubectl: Kubectl, pods: list[dict]):
    """(pod name, (track, metrics)) of every ready pod of either track, not on its way out."""
    for pod in pods:
        if "deletionTimestamp" in pod["metadata"] or pod_state(pod) != "ready":
            continue
        name, track = pod["metadata"]["name"], pod["metadata"]["labels"][TRACK]
        port = http_port(pod["spec"])
        path = f"/api/v1/namespaces/{kubectl.namespace}/pods/{name}:{port}/proxy/metrics"
        done = kubectl.run("get", "--raw", path, check=False, timeout=READ_TIMEOUT)
        if done.returncode != 0:
            error = last_line(done.stderr)
            if "forbidden" in error.lower():  # no waiting will grant the right
                raise CanaryFailed(
                    f"cannot read /metrics of pod {name} ({error}): the kubeconfig's user needs "
                    "get on pods/proxy in the namespace"
                )
            raise Unhealthy(f"cannot read /metrics of pod {name} ({error})")
        yield name, (track, PodMetrics.parse(done.stdout))


def remove_canary(kubectl: Kubectl) -> None:
    """Delete the canary (its pods drain as any pod does: endpoints first, then preStop)."""
    kubectl.run("delete", "deployment", CANARY, "--ignore-not-found", "--wait=false")


def canary_removed(kubectl: Kubectl, within: float) -> str | None:
    """Remove the canary, trying again each second for WITHIN seconds (the API server may be
    back by then), with signals held back: None once it is gone, else the last error."""
    deadline = time.monotonic() + within
    kubectl = replace(kubectl, patience=0.0)  # WITHIN is the whole time there is
    with deferred():
        while True:
            try:
                remove_canary(kubectl)
                return None
            except StepError as exc:
                if time.monotonic() >= deadline:
                    return str(exc)
                time.sleep(1)


def remove_or_say_how(kubectl: Kubectl) -> None:
    """Remove the canary, as `abort` and `rollback` do; a StepError naming the command that
    removes it when it cannot be."""
    error = canary_removed(kubectl, CLEANUP_SECONDS)
    if error is not None:
        raise StepError(what_became(kubectl, error))


def what_became(kubectl: Kubectl, error: str | None) -> str:
    """What became of the canary, for an abort line: with the command that removes it when it
    could not be removed."""
    if error is None:
        return "the canary was removed"
    return (
        f"the canary could NOT be removed ({error}) and may still serve its share: remove it "
        f"with `{removal_command(kubectl)}`"
    )


def removal_command(kubectl: Kubectl) -> str:
    return f"kubectl --namespace {kubectl.namespace} delete deployment {CANARY}"


def left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


@dataclass(frozen=True)
class AbortResult:
    """What `abort` did: removed a canary, found none, or kept another run's."""

    result: str  # removed, none or kept
    canary: str | None  # the canary's image
    started_by: str | None

    def outputs(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def abort_canary(kubectl: Kubectl, only_run: str | None) -> AbortResult:
    """Remove the canary in the namespace; with ONLY_RUN, only one that run started (a cancelled
    job's clean-up must not end another run's release)."""
    leftover = kubectl.get("deployment", CANARY)
    if leftover is None:
        log.info("no canary in %s: nothing to abort", kubectl.namespace)
        return AbortResult("none", None, None)
    state = CanaryState.of(leftover)
    image = state.image if state else container_image(leftover)
    run = state.run if state else None
    if only_run is not None and run != only_run:
        log.info(
            "the canary of %s in %s was started by %s, not this run: kept",
            image,
            kubectl.namespace,
            run or "an unknown run",
        )
        return AbortResult("kept", image, run)
    remove_or_say_how(kubectl)
    stable = kubectl.get("deployment", APP)
    serving = container_image(stable) if stable else None
    log.info(
        "removed the canary of %s from %s; stable %s serves, untouched",
        image,
        kubectl.namespace,
        serving or "(none)",
    )
    return AbortResult("removed", image, run)
