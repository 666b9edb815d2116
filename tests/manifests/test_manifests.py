"""The Kubernetes manifests: valid against the schemas, safe, and consistent with the app."""

from __future__ import annotations

import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from aiship.app.server import DRAIN_SECONDS
from tests.repo import REPO_ROOT

OVERLAYS = ["base", "overlays/staging", "overlays/production"]
KUBERNETES_VERSION = "1.37.0"  # the local control plane runs v1.37 (src/aiship/tools/kube)


def render(overlay: str) -> dict[str, dict]:
    """`kubectl kustomize` of an overlay, as {kind: document}."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed: run ./dev setup"
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / "manifests" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid_strictly(overlay):
    docs = render(overlay)
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validation_catches_a_misspelt_field():
    deployment = render("base")["Deployment"]
    deployment["spec"]["progressDeadlineSecond"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_match_the_pods(overlay):
    docs = render(overlay)
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        docs["Deployment"]["spec"]["selector"]["matchLabels"],
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        docs["Service"]["spec"]["selector"],
    ):
        assert selector and selector.items() <= pod_labels.items()
    assert (
        docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == (docs["Deployment"]["metadata"]["name"])
    )


def test_rollouts_keep_capacity_and_can_be_undone():
    spec = render("overlays/production")["Deployment"]["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["progressDeadlineSeconds"] > 0 and spec["revisionHistoryLimit"] >= 2


def test_pods_run_locked_down():
    pod = render("overlays/production")["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    tmp = [m["mountPath"] for m in container["volumeMounts"]]
    assert tmp == ["/tmp"]


def test_probes_use_the_v2_health_endpoints():
    (container,) = render("base")["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_grace_period_covers_the_drain():
    pod = render("base")["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    drain = DRAIN_SECONDS  # how long the server lets requests in flight finish
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain


def test_production_is_reachable_from_outside():
    docs = render("overlays/production")
    assert docs["Service"]["spec"]["type"] == "LoadBalancer"
    assert render("overlays/staging")["Service"]["spec"]["type"] == "ClusterIP"
