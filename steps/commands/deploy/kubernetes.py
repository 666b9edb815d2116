"""The kubernetes target: kustomize, kubectl apply, rollout status, smoke test, rollout undo."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from ...clients.kubectl import Kubectl, kubectl_path
from ...support.errors import ConfigError, RolledBack, StepError, Unavailable
from ...support.paths import MANIFESTS
from ...support.processes import last_line, run
from .release import DeployResult, Release, smoke_failure

log = logging.getLogger(__name__)

APP = "aiship"  # the Deployment, its container and the Service in manifests/base
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


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
    if current and previous_image == release.image and rollout_complete(current):
        log.info(
            "deployment/%s in %s already runs %s: nothing to do", APP, namespace, release.image
        )
        return DeployResult("kubernetes", release.image, "unchanged", previous_image)

    documents = render(overlay, release)
    log.info("applying %s to %s (overlay %s)", release.image, namespace, overlay)
    kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    failure = wait_rollout(kubectl, timeout)
    if failure is None and smoke_test:
        failure = run_smoke_test(kubectl, smoke_url)
    if failure is not None:
        for line in diagnose(kubectl, documents):
            log.error("  %s", line)
        restored = roll_back(kubectl, current, documents, timeout)
        raise RolledBack(f"the rollout of {release.image} failed ({failure}); {restored}")
    log.info("deployment/%s in %s runs %s", APP, namespace, release.image)
    return DeployResult("kubernetes", release.image, "deployed", previous_image, smoke_url)


def check_access(kubectl: Kubectl) -> None:
    """Fail early, in one line, on a wrong kubeconfig, context or namespace."""
    if not kubectl.kubeconfig.is_file():
        raise ConfigError(f"kubeconfig {kubectl.kubeconfig} not found: run aks-credentials first")
    done = kubectl.run("get", "namespace", kubectl.namespace, "-o", "name", check=False)
    if done.returncode == 0:
        return
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
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "app":
            container["image"] = release.image
    deployment["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = (
        release.change_cause
    )
    deployment["spec"]["template"]["metadata"].setdefault("annotations", {}).update(
        {
            "aiship.io/revision": release.revision,
            "aiship.io/model-version": release.model_version,
        }
    )
    return documents


def wait_rollout(kubectl: Kubectl, timeout: float) -> str | None:
    """None when the rollout completed; otherwise why it did not."""
    done = kubectl.run(
        "rollout",
        "status",
        f"deployment/{APP}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 30,
        check=False,
    )
    if done.returncode == 0:
        return None
    return last_line(done.stderr or done.stdout)


def run_smoke_test(kubectl: Kubectl, url: str | None) -> str | None:
    """Smoke-test `url`, or the Service through a port-forward; None when it passed."""
    if url:
        return smoke_failure(url)
    with kubectl.port_forward(f"service/{APP}", 80) as local_url:
        return smoke_failure(local_url)


def roll_back(
    kubectl: Kubectl, previous: dict | None, documents: list[dict], timeout: float
) -> str:
    """Put back what ran before; with nothing before, remove what was applied (like helm's
    --atomic). Returns what was done, for the error message."""
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
    if failure:
        raise StepError(
            f"rolled back to {image}, but that rollout failed too ({failure}): "
            "look at `kubectl get pods` now"
        )
    return f"rolled back to {image}, which serves again"


def diagnose(kubectl: Kubectl, documents: list[dict]) -> list[str]:
    """A short account of why: pod states, recent warning events, a failing pod's last log."""
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    selector = ",".join(
        f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items()
    )
    lines: list[str] = []
    pods = (kubectl.get("pods", "-l", selector) or {}).get("items", [])
    failing = None
    for pod in pods:
        state = pod_state(pod)
        lines.append(f"pod {pod['metadata']['name']}: {state}")
        if failing is None and not state.startswith("ready"):
            failing = pod
    events = (kubectl.get("events", "--field-selector", "type=Warning") or {}).get("items", [])
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or "")[-5:]:
        lines.append(
            f"event {event['involvedObject']['name']}: {event.get('reason')}: "
            f"{(event.get('message') or '').strip()}"
        )
    if failing is not None:
        logs = kubectl.run(
            "logs", failing["metadata"]["name"], "--tail=5", "--all-containers", check=False
        )
        lines += [f"log: {line}" for line in logs.stdout.splitlines()[-5:]]
    return lines


def pod_state(pod: dict) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if statuses and all(s.get("ready") for s in statuses):
        return "ready"
    for status in statuses:
        for key in ("waiting", "terminated"):
            detail = status.get("state", {}).get(key)
            if detail:
                return f"{key} ({detail.get('reason', '?')}), restarts {status['restartCount']}"
    return f"not ready ({pod.get('status', {}).get('phase', 'unknown')})"


def container_image(deployment: dict) -> str | None:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "app":
            return container["image"]
    return None


def rollout_complete(deployment: dict) -> bool:
    spec, status = deployment["spec"], deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
    )
