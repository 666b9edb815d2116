"""A Deployment's rollout as kubectl shows it: its current ReplicaSet and pods, whether the
rollout completed or is stuck and why (the diagnosis), and a smoke test of its new pods. Shared by
the rolling deploy (kubernetes.py) and the canary (canary.py)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from ...clients.kubectl import Kubectl
from ...support.errors import ConfigError
from .release import Build, smoke_failure

log = logging.getLogger(__name__)

APP = "aiship"  # the Deployment, its container and the Service in manifests/base
CONTAINER = "app"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
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


def wait_rollout(
    kubectl: Kubectl, timeout: float, name: str = APP, node_patience: float | None = None
) -> str | None:
    """None once the rollout of deployment NAME completed; otherwise why not, as soon as that is
    known: a new pod stuck (crash loop, image pull, bad config, restarts; with NODE_PATIENCE, no
    ready node for it that long), the progress deadline, or TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = kubectl.get("deployment", name)
        if deployment is None:
            return f"deployment/{name} disappeared during the rollout"
        if rollout_complete(deployment):
            return None
        progressing = condition(deployment, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return f"no progress for {deployment['spec'].get('progressDeadlineSeconds')} s"
        pods = new_pods(kubectl, deployment)
        stuck = next((why for pod in pods if (why := stuck_reason(pod, node_patience))), None)
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


def stuck_reason(pod: dict, node_patience: float | None = None) -> str | None:
    """Why POD will not become ready by itself, or None while it still may; with NODE_PATIENCE,
    a pod whose node stopped reporting, or that no node will take because the nodes are not
    ready, counts as stuck after that many seconds (a node may come back; a pod waiting for
    resources, which an autoscaler may add, is not judged here)."""
    lost = node_lost(pod)
    if lost and node_patience is not None:
        reason, since = lost
        waited = (datetime.now(UTC) - since).total_seconds()
        if waited >= node_patience:
            return f"pod {pod['metadata']['name']} {reason} for {waited:.0f} s"
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


# The taints the node controller puts on a node that stopped reporting (and the scheduler names).
NODE_GONE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def node_lost(pod: dict) -> tuple[str, datetime] | None:
    """(what, since when) when POD has no working node: not schedulable only because the nodes
    are not ready, or running on a node the node controller found gone (Ready False while its
    containers, which no kubelet updates any more, still say ready)."""
    scheduled, ready = condition(pod, "PodScheduled"), condition(pod, "Ready")
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if scheduled and scheduled.get("status") == "False":
        message = scheduled.get("message") or ""
        if any(taint in message for taint in NODE_GONE_TAINTS):
            return "has no ready node to run on", _moment(scheduled)
    elif (
        ready
        and ready.get("status") == "False"
        and statuses
        and all(s.get("ready") for s in statuses)
    ):
        return "is on a node that stopped reporting", _moment(ready)
    return None


def _moment(found: dict) -> datetime:
    stamp = found.get("lastTransitionTime") or ""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


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
    pod = ready[0]
    with kubectl.port_forward(f"pod/{pod['metadata']['name']}", http_port(pod["spec"])) as url:
        return smoke_failure(url, build)


def http_port(pod_spec: dict) -> int:
    """The container port named http of a pod's spec (or a Deployment's pod template's)."""
    for container in pod_spec["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == "http":
                return port["containerPort"]
    raise ConfigError(f"deployment/{APP} has no container port named http: name one in manifests/")


def diagnose(kubectl: Kubectl, name: str = APP) -> list[str]:
    """Why deployment NAME's current revision failed: its pods' states, the events of those pods
    and of their ReplicaSet in time order (a scheduler's too), and a failing pod's last log
    lines."""
    deployment = kubectl.get("deployment", name)
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
    """ "ready", or why not. The pod's Ready condition decides, as for a Service's endpoints: the
    node controller turns it False for pods of a node that stopped reporting, while their
    containers' statuses still say ready (no kubelet is left to change them)."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    containers_ready = bool(statuses) and all(s.get("ready") for s in statuses)
    ready = condition(pod, "Ready")
    if containers_ready and (ready is None or ready.get("status") == "True"):
        return "ready"
    if containers_ready:
        why = ready.get("reason") or ready.get("message") or "its node stopped reporting"
        return f"not ready ({why})"
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
