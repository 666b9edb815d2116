"""The kubernetes target: kustomize, kubectl apply, a watched rollout, a smoke test of the new pods,
and `rollout undo` (itself smoke-tested) when anything fails."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import yaml

from ...clients.kubectl import Kubectl, kubectl_path
from ...support.errors import ConfigError, RolledBack, StepError, Unavailable
from ...support.paths import MANIFESTS
from ...support.processes import last_line, run
from .release import Build, DeployResult, Release, smoke_failure

log = logging.getLogger(__name__)

APP = "aiship"  # the Deployment, its container and the Service in manifests/base
CONTAINER = "app"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
APPLIED_ANNOTATION = "aiship.io/applied-sha256"  # what was applied, rendered, as a digest
RELEASE_ANNOTATIONS = ("aiship.io/revision", "aiship.io/model-version", "aiship.io/model-sha256")
# A new pod in one of these states will not come right by waiting (kubelet keeps backing off).
STUCK_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
MAX_RESTARTS = 2  # a new pod restarted more often than this is failing, whatever it says
POLL_SECONDS = 1.0
SUPPORTED_SKEW = 1  # kubectl is supported within one minor version of the API server


def deploy_kubernetes(
    release: Release,
    *,
    kubeconfig: Path,
    namespace: str,
    context: str | None = None,
    overlay: str = "production",
    timeout: float = 300,
    smoke_test: bool = False,
    smoke_url: str | None = None,
) -> DeployResult:
    kubectl = Kubectl(kubeconfig, namespace, context)
    check_access(kubectl)
    current = kubectl.get("deployment", APP)
    previous_image = container_image(current) if current else None
    documents = render(overlay, release)
    applied = fingerprint(documents)
    if current and current_fingerprint(current) == applied and rollout_complete(current):
        log.info("deployment/%s in %s already runs this release: nothing to apply", APP, namespace)
        if smoke_test:
            failure = smoke_pods(kubectl, current, release.build, smoke_url)
            if failure:
                raise StepError(f"{release.image} runs, unchanged, but fails its {failure}")
        return DeployResult("kubernetes", release.image, "unchanged", previous_image, smoke_url)

    record(documents, applied, current)
    manifests = yaml.safe_dump_all(documents)
    check_with_server(kubectl, manifests, overlay)
    log.info("applying %s to %s (overlay %s)", release.image, namespace, overlay)
    kubectl.run("apply", "-f", "-", stdin=manifests)
    failure = wait_rollout(kubectl, timeout)
    if failure is None and smoke_test:
        failure = smoke_pods(kubectl, kubectl.get("deployment", APP), release.build, smoke_url)
    if failure is not None:
        log.error("the rollout of %s failed: %s", release.image, failure)
        for line in diagnose(kubectl):
            log.error("  %s", line)
        restored = roll_back(kubectl, current, documents, timeout)
        raise RolledBack(f"the rollout of {release.image} failed ({failure}); {restored}")
    log.info("deployment/%s in %s runs %s", APP, namespace, release.image)
    return DeployResult("kubernetes", release.image, "deployed", previous_image, smoke_url)


# Before: access, versions, manifests


def check_access(kubectl: Kubectl) -> None:
    """Fail early, in one line, on a wrong kubeconfig, context or namespace; warn when kubectl
    is too far from the API server's version to be supported."""
    if not kubectl.kubeconfig.is_file():
        raise ConfigError(f"kubeconfig {kubectl.kubeconfig} not found: run aks-credentials first")
    done = kubectl.run("get", "namespace", kubectl.namespace, "-o", "name", check=False)
    if done.returncode != 0:
        error = last_line(done.stderr)
        if "context" in error and "does not exist" in error:
            raise ConfigError(
                f"context {kubectl.context!r} is not in {kubectl.kubeconfig}: "
                "pass one of `kubectl config get-contexts`"
            )
        if "NotFound" in error:
            raise ConfigError(
                f"namespace {kubectl.namespace!r} does not exist: create it "
                f"(kubectl create namespace {kubectl.namespace}) or fix --namespace"
            )
        raise Unavailable(f"the cluster did not answer: {error}")
    skew = version_skew(kubectl.run("version", "-o", "json", check=False).stdout)
    if skew:
        log.warning("%s", skew)


def version_skew(version_json: str) -> str | None:
    """What is wrong with kubectl's version against the server's (`kubectl version -o json`),
    or None when it is within the supported skew or cannot be told."""
    try:
        versions = json.loads(version_json)
        client, server = versions["clientVersion"], versions["serverVersion"]
        client_minor = int(str(client["minor"]).rstrip("+"))
        server_minor = int(str(server["minor"]).rstrip("+"))
    except (ValueError, KeyError, TypeError):
        return None
    if abs(client_minor - server_minor) <= SUPPORTED_SKEW:
        return None
    return (
        f"kubectl {client['gitVersion']} is outside the supported skew (one minor version) of "
        f"the API server {server['gitVersion']}: use kubectl 1.{server_minor} "
        f"(azure/setup-kubectl or KubectlInstaller@0 with that version)"
    )


def overlay_folder(overlay: str) -> Path:
    """manifests/overlays/OVERLAY (or manifests/base), which must hold a kustomization."""
    folder = MANIFESTS / ("base" if overlay == "base" else f"overlays/{overlay}")
    if not (folder / "kustomization.yaml").is_file():
        raise ConfigError(f"no overlay {overlay!r}: expected {folder}/kustomization.yaml")
    return folder


def render(overlay: str, release: Release) -> list[dict]:
    """kustomize the overlay, pin the image by digest and record what is being released."""
    folder = overlay_folder(overlay)
    done = run([kubectl_path(), "kustomize", str(folder)], what=f"kustomize {folder}", timeout=60)
    if done.returncode != 0:
        raise StepError(f"kustomize {folder} failed: {last_line(done.stderr)}")
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    deployment = the_deployment(documents)
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == CONTAINER:
            container["image"] = release.image
    deployment["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = (
        release.change_cause
    )
    values = (release.revision, release.model_version, release.model_sha256)
    deployment["spec"]["template"]["metadata"].setdefault("annotations", {}).update(
        dict(zip(RELEASE_ANNOTATIONS, values, strict=True))
    )
    return documents


def check_with_server(kubectl: Kubectl, manifests: str, overlay: str) -> None:
    """The API server validates every object (a server-side dry run) before any is applied: a
    manifest it refuses changes nothing, where a plain apply would stop half-way."""
    done = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=manifests, check=False)
    if done.returncode != 0:
        raise ConfigError(
            f"the API server refuses overlay {overlay!r}, so nothing was applied: "
            f"{last_line(done.stderr)}; fix manifests/"
        )


def the_deployment(documents: list[dict]) -> dict:
    return next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == APP)


def fingerprint(documents: list[dict]) -> str:
    """A digest of everything the release would apply: the same release of the same manifests
    gives the same digest; another overlay, or any manifest change, another one."""
    text = json.dumps(documents, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def current_fingerprint(deployment: dict) -> str | None:
    return deployment["metadata"].get("annotations", {}).get(APPLIED_ANNOTATION)


def record(documents: list[dict], applied: str, current: dict | None) -> None:
    """Stamp the fingerprint on the Deployment; when an autoscaler owns its replica count, apply
    the count it chose (within the new bounds) rather than fight it on every release."""
    deployment = the_deployment(documents)
    deployment["metadata"]["annotations"][APPLIED_ANNOTATION] = applied
    autoscaler = next(
        (
            d
            for d in documents
            if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == APP
        ),
        None,
    )
    if autoscaler is None:
        return
    low = autoscaler["spec"].get("minReplicas", 1)
    high = autoscaler["spec"]["maxReplicas"]
    now = current["spec"].get("replicas", low) if current else low
    deployment["spec"]["replicas"] = min(max(now, low), high)


# During: the watched rollout


def wait_rollout(kubectl: Kubectl, timeout: float) -> str | None:
    """None once the rollout completed; otherwise why not, as soon as that is known: a new pod
    stuck (crash loop, image pull, bad config, restarts), the progress deadline, or TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = kubectl.get("deployment", APP)
        if deployment is None:
            return f"deployment/{APP} disappeared during the rollout"
        if rollout_complete(deployment):
            return None
        progressing = condition(deployment, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return f"no progress for {deployment['spec'].get('progressDeadlineSeconds')} s"
        pods = new_pods(kubectl, deployment)
        stuck = next((why for why in map(stuck_reason, pods) if why), None)
        if stuck:
            return stuck
        if time.monotonic() >= deadline:
            ready = sum(1 for pod in pods if pod_state(pod) == "ready")
            wanted = deployment["spec"].get("replicas", 1)
            return f"{ready} of {wanted} new pods ready after {timeout:g} s"
        time.sleep(POLL_SECONDS)


def new_replica_set(kubectl: Kubectl, deployment: dict) -> dict | None:
    """The ReplicaSet of the Deployment's current revision."""
    revision = deployment["metadata"].get("annotations", {}).get(REVISION_ANNOTATION)
    for replica_set in (kubectl.get("replicasets", "-l", selector(deployment)) or {}).get(
        "items", []
    ):
        if replica_set["metadata"].get("annotations", {}).get(REVISION_ANNOTATION) == revision:
            return replica_set
    return None


def new_pods(kubectl: Kubectl, deployment: dict) -> list[dict]:
    """The pods of the current revision that are not being deleted."""
    replica_set = new_replica_set(kubectl, deployment)
    if replica_set is None:
        return []
    template_hash = replica_set["metadata"]["labels"]["pod-template-hash"]
    found = kubectl.get("pods", "-l", f"{selector(deployment)},pod-template-hash={template_hash}")
    return [p for p in (found or {}).get("items", []) if "deletionTimestamp" not in p["metadata"]]


def stuck_reason(pod: dict) -> str | None:
    """Why POD will not become ready by itself, or None while it still may."""
    for status in container_statuses(pod):
        waiting = status.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            message = (waiting.get("message") or "").strip().splitlines()
            detail = f": {message[0][:200]}" if message else ""
            return f"pod {pod['metadata']['name']} is in {waiting['reason']}{detail}"
        if status.get("restartCount", 0) > MAX_RESTARTS:
            last = status.get("lastState", {}).get("terminated") or {}
            return (
                f"pod {pod['metadata']['name']} restarted {status['restartCount']} times "
                f"(last exit: {last.get('reason', '?')}, code {last.get('exitCode', '?')})"
            )
    return None


# After: smoke test, diagnosis, undo


def smoke_pods(
    kubectl: Kubectl, deployment: dict, build: Build, smoke_url: str | None
) -> str | None:
    """Smoke-test SMOKE_URL, or one ready pod of the current revision through a port-forward
    (a Service's port-forward may pick a pod on its way out); None when it passed."""
    if smoke_url:
        return smoke_failure(smoke_url, build)
    ready = [pod for pod in new_pods(kubectl, deployment) if pod_state(pod) == "ready"]
    if not ready:
        return f"smoke test: no ready pod of deployment/{APP}'s current revision"
    with kubectl.port_forward(f"pod/{ready[0]['metadata']['name']}", http_port(deployment)) as url:
        return smoke_failure(url, build)


def http_port(deployment: dict) -> int:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == "http":
                return port["containerPort"]
    raise ConfigError(f"deployment/{APP} has no container port named http: name one in manifests/")


def roll_back(
    kubectl: Kubectl, previous: dict | None, documents: list[dict], timeout: float
) -> str:
    """Put back what ran before and smoke-test it; with nothing before, remove what was applied
    (like helm's --atomic). Returns what was done, for the error message."""
    if previous is None:
        kubectl.run(
            "delete",
            "-f",
            "-",
            "--ignore-not-found",
            "--wait=false",
            stdin=yaml.safe_dump_all(documents),
        )
        return "it was the first deployment, so what it applied was removed"
    revision = previous["metadata"].get("annotations", {}).get(REVISION_ANNOTATION)
    undo = ["rollout", "undo", f"deployment/{APP}"]
    kubectl.run(*undo, *([f"--to-revision={revision}"] if revision else []))
    failure = wait_rollout(kubectl, timeout)
    image = container_image(previous)
    if failure is None:
        restored = kubectl.get("deployment", APP)
        failure = smoke_pods(kubectl, restored, running_build(previous), None)
    if failure:
        raise StepError(
            f"rolled back to {image}, but it does not serve either ({failure}): "
            "look at `kubectl get pods` now"
        )
    return f"rolled back to {image}, which serves again (smoke-tested)"


def running_build(deployment: dict) -> Build:
    """The revision and model a Deployment's pods run, from the annotations `render` put on
    them (none on a Deployment applied by other hands: then nothing is expected)."""
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    revision, _, model_sha256 = (annotations.get(name, "") for name in RELEASE_ANNOTATIONS)
    return Build.expecting(revision, model_sha256)


def diagnose(kubectl: Kubectl) -> list[str]:
    """Why the current revision failed: its pods' states, the events of those pods and of their
    ReplicaSet in time order (a scheduler's too), and a failing pod's last log lines."""
    deployment = kubectl.get("deployment", APP)
    replica_set = new_replica_set(kubectl, deployment) if deployment else None
    if replica_set is None:
        return ["no ReplicaSet of the new revision was made"]
    pods = new_pods(kubectl, deployment)
    lines = [f"pod {pod['metadata']['name']}: {pod_state(pod)}" for pod in pods]
    names = {replica_set["metadata"]["name"], *(pod["metadata"]["name"] for pod in pods)}
    events = [
        e
        for e in (kubectl.get("events") or {}).get("items", [])
        if e["involvedObject"].get("name") in names
    ]
    for event in sorted(events, key=event_time)[-8:]:
        count = f" (x{event['count']})" if event.get("count", 1) > 1 else ""
        lines.append(
            f"event {event['involvedObject']['kind'].lower()}/{event['involvedObject']['name']}: "
            f"{event.get('reason')}: {(event.get('message') or '').strip()}{count}"
        )
    failing = next((pod for pod in pods if pod_state(pod) != "ready"), None)
    if failing is not None:
        restarted = any(s.get("restartCount", 0) for s in container_statuses(failing))
        logs = kubectl.run(
            "logs",
            failing["metadata"]["name"],
            "--tail=5",
            "--all-containers",
            *(["--previous"] if restarted else []),
            check=False,
        )
        lines += [f"log: {line}" for line in logs.stdout.splitlines()[-5:]]
    return lines


def event_time(event: dict) -> str:
    """When it last happened: events.k8s.io's eventTime, else the core fields (either may be
    null, as a scheduler's FailedScheduling has lastTimestamp: null)."""
    series = (event.get("series") or {}).get("lastObservedTime")
    return (
        series
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event["metadata"].get("creationTimestamp", "")
    )[:19]  # the seconds, whatever precision each field has


def container_statuses(pod: dict) -> list[dict]:
    status = pod.get("status", {})
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def pod_state(pod: dict) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if statuses and all(s.get("ready") for s in statuses):
        return "ready"
    for status in container_statuses(pod):
        for key in ("waiting", "terminated"):
            detail = status.get("state", {}).get(key)
            if detail:
                return f"{key} ({detail.get('reason', '?')}), restarts {status['restartCount']}"
    scheduled = condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return f"not scheduled ({scheduled.get('reason')}: {scheduled.get('message', '')})"
    return f"not ready ({pod.get('status', {}).get('phase', 'unknown')})"


def condition(obj: dict, kind: str) -> dict | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == kind), None
    )


def selector(deployment: dict) -> str:
    labels = deployment["spec"]["selector"]["matchLabels"]
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def container_image(deployment: dict) -> str | None:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == CONTAINER:
            return container["image"]
    return None


def rollout_complete(deployment: dict) -> bool:
    """As `kubectl rollout status` decides: every replica updated and available, none old."""
    spec, status = deployment["spec"], deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
    )
