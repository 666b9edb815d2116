"""The kubernetes target: kustomize, kubectl apply, a watched rollout, a smoke test of the new pods,
and `rollout undo` (itself smoke-tested) when anything fails."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ...clients.kubectl import Kubectl, kubectl_path
from ...support.errors import ConfigError, NotFound, RolledBack, StepError, Unavailable
from ...support.paths import project_manifests
from ...support.processes import last_line, run
from .canary import (
    CANARY,
    CLEANUP_SECONDS,
    canary_removed,
    remove_or_say_how,
    resumable,
    run_canary,
    what_became,
)
from .release import Build, DeployResult, KubernetesTarget, Release
from .rollout import (
    APP,
    CONTAINER,
    REVISION_ANNOTATION,
    container_image,
    diagnose,
    rollout_complete,
    smoke_pods,
    wait_rollout,
)

if TYPE_CHECKING:
    from .analysis import Analysis

log = logging.getLogger(__name__)

APPLIED_ANNOTATION = "aiship.io/applied-sha256"  # what was applied, rendered, as a digest
# The release that ran before this one (JSON): what `rollback` puts back.
PREVIOUS_ANNOTATION = "aiship.io/previous-release"
RELEASE_ANNOTATIONS = ("aiship.io/revision", "aiship.io/model-version", "aiship.io/model-sha256")
SUPPORTED_SKEW = 1  # kubectl is supported within one minor version of the API server


def deploy_kubernetes(
    release: Release,
    target: KubernetesTarget,
    *,
    timeout: float = 300,
    smoke_test: bool = False,
    smoke_url: str | None = None,
    canary: Analysis | None = None,
) -> DeployResult:
    """Roll RELEASE out: straight (a rolling update), or with CANARY, as a canary judged step by
    step against what runs now and promoted only when every step passed."""
    kubectl = Kubectl(target.kubeconfig, target.namespace, target.context)
    namespace, overlay = target.namespace, target.overlay
    check_access(kubectl)
    current = kubectl.get("deployment", APP)
    previous_image = container_image(current) if current else None
    resume = resumable(kubectl, release, previous_image, canary)  # a canary left: settled first
    documents = render(overlay, release)
    applied = fingerprint(documents)
    if current and current_fingerprint(current) == applied and rollout_complete(current):
        log.info("deployment/%s in %s already runs this release: nothing to apply", APP, namespace)
        if smoke_test:
            failure = smoke_pods(kubectl, current, release.build, smoke_url)
            if failure:
                raise StepError(f"{release.image} runs, unchanged, but fails its {failure}")
        return DeployResult("kubernetes", release.image, "unchanged", previous_image, smoke_url)

    check_selector(current, the_deployment(documents))
    record(documents, applied, current)
    manifests = yaml.safe_dump_all(documents)
    check_with_server(kubectl, manifests, overlay)
    checks: tuple[str, ...] = ()
    if canary is not None and current is not None and previous_image != release.image:
        deployment = the_deployment(documents)
        checks = run_canary(kubectl, release, deployment, canary, timeout, smoke_test, resume)
    elif canary is not None:
        why = "nothing runs yet" if current is None else "it runs this image already"
        log.info("no canary: %s, so the release is rolled out directly", why)
    try:
        # Promotion keeps capacity: stable runs the new image at full size before the canary goes.
        roll_out(kubectl, release, documents, current, timeout, smoke_test, smoke_url)
    finally:
        if checks:  # promoted or not, the canary's work is done once stable has been rolled
            log.info("%s", what_became(kubectl, canary_removed(kubectl, CLEANUP_SECONDS)))
    log.info("deployment/%s in %s runs %s", APP, namespace, release.image)
    result = "promoted" if checks else "deployed"
    return DeployResult("kubernetes", release.image, result, previous_image, smoke_url, checks)


@dataclass(frozen=True)
class RollbackPoint:
    """What a rollback puts back: RELEASE; when a canary runs beside stable, only that canary
    goes (stable is the last release judged good) and RELEASE is stable's."""

    release: Release
    canary: str | None = None  # the canary's image, to remove


def release_to_roll_back(target: KubernetesTarget) -> RollbackPoint:
    """What deployment/aiship in the target's namespace goes back to: its running release when
    a canary runs beside it, else the release it ran before the one it runs now."""
    kubectl = Kubectl(target.kubeconfig, target.namespace, target.context)
    namespace = target.namespace
    check_access(kubectl)
    current = kubectl.get("deployment", APP)
    if current is None:
        raise NotFound(f"nothing to roll back: deployment/{APP} does not exist in {namespace}")
    canary = kubectl.get("deployment", CANARY)
    if canary is not None:
        stable = running_release(current)
        if stable is None:
            raise ConfigError(
                f"deployment/{APP} in {namespace} does not run an image pinned by digest: remove "
                f"the canary with `kubectl --namespace {namespace} delete deployment {CANARY}`"
            )
        log.info(
            "a canary of %s runs beside stable %s: removing only the canary",
            container_image(canary),
            stable.image,
        )
        return RollbackPoint(stable, container_image(canary))
    previous = previous_release(current)
    if previous is None:
        raise NotFound(
            f"deployment/{APP} in {namespace} records no release before the one it runs "
            f"({PREVIOUS_ANNOTATION}): deploy the digest to go back to with "
            "deploy --strategy rolling --skip-staging-check"
        )
    log.info("rolling back from %s to %s", container_image(current), previous.image)
    return RollbackPoint(previous)


def remove_the_canary(target: KubernetesTarget, point: RollbackPoint) -> DeployResult:
    """A rollback that removes only the canary: stable untouched."""
    kubectl = Kubectl(target.kubeconfig, target.namespace, target.context)
    remove_or_say_how(kubectl)
    line = f"removed the canary of {point.canary}; stable serves, untouched"
    log.info("%s", line)
    image = point.release.image
    return DeployResult("kubernetes", image, "rolled-back", point.canary, checks=(line,))


def roll_out(
    kubectl: Kubectl,
    release: Release,
    documents: list[dict],
    current: dict | None,
    timeout: float,
    smoke_test: bool,
    smoke_url: str | None,
) -> None:
    """Apply, watch the rollout, smoke-test the new pods; on any failure diagnose it, put back
    what ran before and raise RolledBack."""
    log.info("applying %s to %s", release.image, kubectl.namespace)
    kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    failure = wait_rollout(kubectl, timeout)
    if failure is None and smoke_test:
        failure = smoke_pods(kubectl, kubectl.get("deployment", APP), release.build, smoke_url)
    if failure is not None:
        log.error("the rollout of %s failed: %s", release.image, failure)
        for line in diagnose(kubectl):
            log.error("  %s", line)
        restored = roll_back(kubectl, current, documents, timeout)
        raise RolledBack(f"the rollout of {release.image} failed ({failure}); {restored}")


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
        if "Forbidden" in error:  # a namespace-scoped deployer may not read namespaces
            log.debug("cannot read namespace %s (%s): going on", kubectl.namespace, error)
        elif "NotFound" in error:
            raise ConfigError(
                f"namespace {kubectl.namespace!r} does not exist: create it "
                f"(kubectl create namespace {kubectl.namespace}) or fix --namespace"
            )
        else:
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
    folder = project_manifests() / ("base" if overlay == "base" else f"overlays/{overlay}")
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


def check_selector(current: dict | None, deployment: dict) -> None:
    """A Deployment's selector cannot change in place: say how to move to the new one."""
    if current is None or current["spec"]["selector"] == deployment["spec"]["selector"]:
        return
    labels = deployment["spec"]["selector"].get("matchLabels", {})
    raise ConfigError(
        f"deployment/{APP}'s selector would change to {labels}, which Kubernetes refuses in "
        f"place: `kubectl delete deployment {APP} --cascade=orphan` (its pods keep serving), "
        "deploy again, then delete the orphaned pods"
    )


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
    """Stamp the fingerprint on the Deployment, and the release it replaces (kept when only the
    manifests change); when an autoscaler owns its replica count, apply the count it chose
    (within the new bounds) rather than fight it on every release."""
    deployment = the_deployment(documents)
    annotations = deployment["metadata"]["annotations"]
    annotations[APPLIED_ANNOTATION] = applied
    if current is not None:
        replaced = running_release(current)
        if replaced is not None and replaced.image != container_image(deployment):
            annotations[PREVIOUS_ANNOTATION] = json.dumps(asdict(replaced), sort_keys=True)
        elif PREVIOUS_ANNOTATION in current["metadata"].get("annotations", {}):
            annotations[PREVIOUS_ANNOTATION] = current["metadata"]["annotations"][
                PREVIOUS_ANNOTATION
            ]
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


# After: smoke test, diagnosis, undo


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


def running_release(deployment: dict) -> Release | None:
    """What a Deployment runs, as a release (None when it is not pinned by digest, as one
    applied by other hands may not be)."""
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    revision, version, model_sha256 = (annotations.get(name, "") for name in RELEASE_ANNOTATIONS)
    try:
        return Release(
            container_image(deployment) or "",
            revision or "unknown",
            version or "unknown",
            model_sha256,
        )
    except ConfigError:
        return None


def previous_release(deployment: dict) -> Release | None:
    """The release deployment replaced last (from PREVIOUS_ANNOTATION), if any."""
    text = deployment["metadata"].get("annotations", {}).get(PREVIOUS_ANNOTATION)
    if not text:
        return None
    try:
        return Release(**json.loads(text))
    except (ValueError, TypeError, ConfigError):
        raise ConfigError(
            f"deployment/{APP}'s annotation {PREVIOUS_ANNOTATION} is not a release: "
            "deploy the previous digest by hand (deploy --strategy rolling --image ...)"
        ) from None


def running_build(deployment: dict) -> Build:
    """The revision and model a Deployment's pods run, from the annotations `render` put on
    them (none on a Deployment applied by other hands: then nothing is expected)."""
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    revision, _, model_sha256 = (annotations.get(name, "") for name in RELEASE_ANNOTATIONS)
    return Build.expecting(revision, model_sha256)
