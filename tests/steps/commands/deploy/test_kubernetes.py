"""deploy --target kubernetes on a real control plane: kubectl apply by digest, rollout status,
a rollout that never gets ready undone by itself, and clear errors for a wrong scope."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from steps.commands.deploy.kubernetes import deploy_kubernetes
from steps.commands.deploy.release import Release
from steps.local.kube_cluster import NEVER_READY_MARKER
from steps.support.errors import ConfigError, RolledBack

REPOSITORY = "127.0.0.1:5000/aiship"  # kwok plays the kubelet: nothing is ever pulled


def image(name: str, repository: str = REPOSITORY) -> str:
    return f"{repository}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"


def deployment(cluster, namespace: str) -> dict:
    done = cluster.kubectl("-n", namespace, "get", "deployment", "aiship", "-o", "json")
    return json.loads(done.stdout)


def running_image(cluster, namespace: str) -> str:
    (container,) = deployment(cluster, namespace)["spec"]["template"]["spec"]["containers"]
    return container["image"]


def deploy(cluster, namespace: str, release: Release, **options):
    return deploy_kubernetes(
        release,
        kubeconfig=cluster.kubeconfig,
        namespace=namespace,
        overlay="staging",
        **{"timeout": 90, **options},
    )


def test_first_deploy_update_and_no_op(kube_cluster, kube_namespace):
    v1, v2 = image("v1"), image("v2")
    first = deploy(kube_cluster, kube_namespace, Release(v1, "rev-1", "1.0.0"))
    assert (first.result, first.previous_image) == ("deployed", None)
    assert running_image(kube_cluster, kube_namespace) == v1
    annotations = deployment(kube_cluster, kube_namespace)["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == f"deploy {v1} (revision rev-1, model 1.0.0)"

    assert deploy(kube_cluster, kube_namespace, Release(v1)).result == "unchanged"

    update = deploy(kube_cluster, kube_namespace, Release(v2, "rev-2", "2.0.0"))
    assert (update.result, update.previous_image) == ("deployed", v1)
    template = deployment(kube_cluster, kube_namespace)["spec"]["template"]
    assert template["metadata"]["annotations"]["aiship.io/model-version"] == "2.0.0"
    history = kube_cluster.kubectl(
        "-n", kube_namespace, "rollout", "history", "deployment/aiship"
    ).stdout
    assert "revision rev-1" in history and "revision rev-2" in history


def test_a_never_ready_image_is_undone_and_diagnosed(kube_cluster, kube_namespace, caplog):
    good, broken = image("good"), image("bad", f"{REPOSITORY}-{NEVER_READY_MARKER}")
    deploy(kube_cluster, kube_namespace, Release(good))
    with caplog.at_level(logging.ERROR), pytest.raises(RolledBack) as info:
        deploy(kube_cluster, kube_namespace, Release(broken), timeout=20)
    assert f"rolled back to {good}, which serves again" in str(info.value)
    assert running_image(kube_cluster, kube_namespace) == good
    status = deployment(kube_cluster, kube_namespace)["status"]
    assert status.get("readyReplicas") == status.get("replicas") == 1
    assert "not ready" in caplog.text  # the diagnosis names the pod that never got ready


def test_a_first_deploy_that_fails_leaves_nothing(kube_cluster, kube_namespace):
    broken = image("bad", f"{REPOSITORY}-{NEVER_READY_MARKER}")
    with pytest.raises(RolledBack, match="first deployment"):
        deploy(kube_cluster, kube_namespace, Release(broken), timeout=15)
    done = kube_cluster.kubectl("-n", kube_namespace, "get", "deployment", "aiship", check=False)
    assert done.returncode != 0 and "NotFound" in done.stderr


def test_a_wrong_namespace_or_context_is_named(kube_cluster):
    with pytest.raises(ConfigError, match="namespace 'nowhere' does not exist"):
        deploy(kube_cluster, "nowhere", Release(image("v1")))
    with pytest.raises(ConfigError, match="context 'elsewhere' is not in"):
        deploy(kube_cluster, "default", Release(image("v1")), context="elsewhere")
