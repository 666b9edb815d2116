"""deploy --target kubernetes on real pods (the local cluster's kubelet node): apply by digest, a
watched rollout, the smoke test of the new pods through a port-forward, and rollouts that fail for
real reasons, each diagnosed and undone while the previous version keeps serving."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest

from aiship.clients.kubectl import Kubectl
from aiship.commands.deploy.kubernetes import deploy_kubernetes, version_skew
from aiship.commands.deploy.release import KubernetesTarget, Release
from aiship.support.errors import ConfigError, RolledBack
from aiship.support.paths import PROJECT_DIR_VARIABLE
from tests.repo import MANIFESTS
from tests.traffic import Traffic

pytestmark = pytest.mark.docker


def get(cluster, namespace: str, *what: str) -> dict:
    return json.loads(cluster.kubectl("-n", namespace, "get", *what, "-o", "json").stdout)


def deployment(cluster, namespace: str) -> dict:
    return get(cluster, namespace, "deployment", "aiship")


def running_image(cluster, namespace: str) -> str:
    (container,) = deployment(cluster, namespace)["spec"]["template"]["spec"]["containers"]
    return container["image"]


def deploy(cluster, namespace: str, release: Release, overlay="staging", context=None, **options):
    target = KubernetesTarget(cluster.kubeconfig, namespace, context, overlay)
    return deploy_kubernetes(release, target, **{"timeout": 120, "smoke_test": True, **options})


def test_deploy_smoke_tests_the_new_pods_then_updates_and_knows_when_nothing_changed(
    kube_cluster, kube_namespace, release_images, caplog
):
    v1, v2 = release_images.v1, release_images.v2
    with caplog.at_level(logging.INFO):
        first = deploy(kube_cluster, kube_namespace, v1)
    assert (first.result, first.previous_image) == ("deployed", None)
    assert running_image(kube_cluster, kube_namespace) == v1.image
    # The smoke test reached a pod of this release: /version named its revision and model.
    assert f"serves digits 1.0.0 (revision {v1.revision})" in caplog.text
    annotations = deployment(kube_cluster, kube_namespace)["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == v1.change_cause

    assert deploy(kube_cluster, kube_namespace, v1).result == "unchanged"

    caplog.clear()
    with caplog.at_level(logging.INFO):
        update = deploy(kube_cluster, kube_namespace, v2)
    assert (update.result, update.previous_image) == ("deployed", v1.image)
    assert f"serves digits 2.0.0 (revision {v2.revision})" in caplog.text
    template = deployment(kube_cluster, kube_namespace)["spec"]["template"]
    assert template["metadata"]["annotations"]["aiship.io/model-sha256"] == v2.model_sha256


def test_a_smoke_test_that_expects_another_build_fails_and_rolls_back(
    kube_cluster, kube_namespace, release_images
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    claims_v1 = Release(v2.image, v1.revision, v2.model_version, v2.model_sha256)
    with pytest.raises(RolledBack, match=f"runs code revision {v2.revision}, expected"):
        deploy(kube_cluster, kube_namespace, claims_v1)
    assert running_image(kube_cluster, kube_namespace) == v1.image


def test_the_same_digest_with_another_overlay_is_applied(
    kube_cluster, kube_namespace, release_images
):
    v1 = release_images.v1
    deploy(kube_cluster, kube_namespace, v1, overlay="staging")
    result = deploy(kube_cluster, kube_namespace, v1, overlay="production")
    assert result.result == "deployed"
    assert deployment(kube_cluster, kube_namespace)["spec"]["replicas"] == 3
    assert get(kube_cluster, kube_namespace, "hpa", "aiship")["spec"]["minReplicas"] == 3
    assert get(kube_cluster, kube_namespace, "service", "aiship")["spec"]["type"] == "LoadBalancer"


def test_a_release_keeps_the_replica_count_the_autoscaler_chose(
    kube_cluster, kube_namespace, release_images
):
    deploy(kube_cluster, kube_namespace, release_images.v1)  # staging: the autoscaler's one
    kube_cluster.kubectl("-n", kube_namespace, "scale", "deployment/aiship", "--replicas=2")
    deploy(kube_cluster, kube_namespace, release_images.v2)
    assert deployment(kube_cluster, kube_namespace)["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("broken", "cause", "log_line"),
    [
        # the app verifies model.onnx against model.json's sha256 and refuses to start
        ("bad_model", r"CrashLoopBackOff|restarted", "sha256"),
        ("crashing", r"CrashLoopBackOff|restarted", "crashed"),
    ],
)
def test_a_crashing_release_fails_fast_is_diagnosed_and_undone_while_v1_serves(
    kube_cluster, kube_namespace, release_images, caplog, broken, cause, log_line
):
    v1 = release_images.v1
    deploy(kube_cluster, kube_namespace, v1)
    kubectl = Kubectl(kube_cluster.kubeconfig, kube_namespace)
    with (
        kubectl.port_forward("service/aiship", 80) as url,
        Traffic(f"{url}/v2/models/digits/infer") as traffic,
        caplog.at_level(logging.ERROR),
        pytest.raises(RolledBack) as info,
    ):
        # A long timeout: only a fast diagnosis of the crash can end this before it.
        deploy(kube_cluster, kube_namespace, getattr(release_images, broken), timeout=600)
    message = str(info.value)
    assert "new pods ready after" not in message  # not the timeout
    assert f"rolled back to {v1.image}, which serves again (smoke-tested)" in message
    assert running_image(kube_cluster, kube_namespace) == v1.image
    assert traffic.failures == [] and traffic.ok > 0  # v1 served every request throughout
    assert re.search(cause, message)
    assert "log: " in caplog.text and log_line in caplog.text  # the failing pod's last words


def test_a_release_that_never_gets_ready_is_undone_at_the_timeout_while_v1_serves(
    kube_cluster, kube_namespace, release_images, caplog
):
    v1 = release_images.v1
    deploy(kube_cluster, kube_namespace, v1)
    with (
        kube_cluster.service_traffic(kube_namespace) as traffic,
        caplog.at_level(logging.ERROR),
        pytest.raises(RolledBack, match="0 of 1 new pods ready after 25 s") as info,
    ):
        deploy(kube_cluster, kube_namespace, release_images.never_ready, timeout=25)
    assert "which serves again (smoke-tested)" in str(info.value)
    assert running_image(kube_cluster, kube_namespace) == v1.image
    assert traffic.failures == [] and traffic.ok > 0
    # The cause, from the new pod's own events: its probes find nothing on the port.
    assert "Unhealthy" in caplog.text and "connection refused" in caplog.text


def test_a_first_deploy_that_fails_leaves_nothing(kube_cluster, kube_namespace, release_images):
    with pytest.raises(RolledBack, match="first deployment"):
        deploy(kube_cluster, kube_namespace, release_images.bad_model, timeout=300)
    for kind in ("deployment", "service", "hpa", "pdb"):
        done = kube_cluster.kubectl("-n", kube_namespace, "get", kind, "aiship", check=False)
        assert done.returncode != 0 and "NotFound" in done.stderr


def overlay_asking_for_cpu(manifests, cpu: str) -> str:
    """An overlay of staging whose pods request CPU cores; its name."""
    name = f"cpu-{cpu}"
    (manifests / "overlays" / name).mkdir()
    (manifests / "overlays" / name / "kustomization.yaml").write_text(
        "resources: [../staging]\npatches:\n  - target: {kind: Deployment, name: aiship}\n"
        "    patch: |-\n      - op: replace\n"
        "        path: /spec/template/spec/containers/0/resources/requests/cpu\n"
        f'        value: "{cpu}"\n'
    )
    return name


def test_a_manifest_the_server_refuses_changes_nothing_and_the_scheduler_is_heard(
    kube_cluster, kube_namespace, release_images, caplog, tmp_path, monkeypatch
):
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    monkeypatch.setenv(PROJECT_DIR_VARIABLE, str(tmp_path))  # the project's manifests/
    deploy(kube_cluster, kube_namespace, release_images.v1)
    before = get(kube_cluster, kube_namespace, "deployment,service,hpa,pdb")["items"]

    invalid = overlay_asking_for_cpu(manifests, "64")  # above the container's limit of 2
    with pytest.raises(ConfigError, match="refuses overlay 'cpu-64', so nothing was applied"):
        deploy(kube_cluster, kube_namespace, release_images.v2, overlay=invalid)
    assert get(kube_cluster, kube_namespace, "deployment,service,hpa,pdb")["items"] == before

    unschedulable = overlay_asking_for_cpu(manifests, "2")  # the node's every core
    with caplog.at_level(logging.ERROR), pytest.raises(RolledBack):
        deploy(kube_cluster, kube_namespace, release_images.v2, overlay=unschedulable, timeout=15)
    assert "FailedScheduling" in caplog.text and "Insufficient cpu" in caplog.text
    assert running_image(kube_cluster, kube_namespace) == release_images.v1.image


def test_a_rolling_update_loses_no_request_and_the_budget_allows_one_eviction(
    kube_cluster, kube_namespace, release_images
):
    deploy(kube_cluster, kube_namespace, release_images.v1, overlay="production")
    with kube_cluster.service_traffic(kube_namespace) as traffic:
        deploy(kube_cluster, kube_namespace, release_images.v2, overlay="production")
    # readiness gates new pods in; preStop keeps old ones serving until they left the endpoints
    assert traffic.failures == [] and traffic.ok > 0

    pods = get(kube_cluster, kube_namespace, "pods", "-l", "app.kubernetes.io/name=aiship")
    names = [
        p["metadata"]["name"] for p in pods["items"] if "deletionTimestamp" not in p["metadata"]
    ]
    assert len(names) == 3
    first, second = (evict(kube_cluster, kube_namespace, name) for name in names[:2])
    assert first.returncode == 0, first.stderr
    assert second.returncode != 0 and "disruption budget" in second.stderr


def evict(cluster, namespace: str, pod: str):
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
    }
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction"
    return cluster.kubectl(
        "create", "--raw", path, "-f", "-", check=False, input=json.dumps(eviction)
    )


def test_kubectl_outside_the_supported_skew_is_named(kube_cluster):
    real = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert version_skew(json.dumps(real)) is None  # the pinned kubectl and the local cluster
    server_minor = int(real["serverVersion"]["minor"])
    real["clientVersion"].update(minor=str(server_minor - 2), gitVersion="v1.old")
    said = version_skew(json.dumps(real))
    assert said.startswith("kubectl v1.old is outside the supported skew")
    assert f"use kubectl 1.{server_minor}" in said


def test_a_wrong_namespace_or_context_is_named(kube_cluster, release_images):
    with pytest.raises(ConfigError, match="namespace 'nowhere' does not exist"):
        deploy(kube_cluster, "nowhere", release_images.v1)
    with pytest.raises(ConfigError, match="context 'elsewhere' is not in"):
        deploy(kube_cluster, "default", release_images.v1, context="elsewhere")
