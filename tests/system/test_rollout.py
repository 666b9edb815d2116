"""The project's manifests on the local cluster's real node: apply, rollout status, a rollout that
fails its progress deadline, and `kubectl rollout undo` back to the previous revision.

Every expectation is read back from the API server: the Deployment's conditions, its ReplicaSets
(revision, image, ready replicas), the pods' Ready condition, and the Service's endpoints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from aiship.support.waiting import wait_for
from tests.repo import REPO_ROOT

BASE = REPO_ROOT / "manifests" / "base"
APP = "aiship"
CONTAINER = "app"
REPLICAS = 2  # manifests/base
PROGRESS_DEADLINE = 20  # seconds; lowered for the test (the base says 180)
ROLLOUT_TIMEOUT = "120s"


def write_overlay(folder: Path, namespace: str, image: str) -> Path:
    """An overlay of manifests/base: our namespace, our image, a short progress deadline."""
    folder.mkdir(parents=True, exist_ok=True)
    repository, digest = image.split("@")
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(BASE, folder)],
        "images": [{"name": APP, "newName": repository, "digest": digest}],
        "patches": [
            {
                "target": {"kind": "Deployment", "name": APP},
                "patch": yaml.safe_dump(
                    [
                        {
                            "op": "replace",
                            "path": "/spec/progressDeadlineSeconds",
                            "value": PROGRESS_DEADLINE,
                        }
                    ]
                ),
            }
        ],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    return folder


def get(cluster, namespace: str, *what: str) -> dict:
    return json.loads(cluster.kubectl("-n", namespace, "get", *what, "-o", "json").stdout)


def rollout_status(cluster, namespace: str):
    return cluster.kubectl(
        "-n",
        namespace,
        "rollout",
        "status",
        f"deployment/{APP}",
        f"--timeout={ROLLOUT_TIMEOUT}",
        timeout=180,
        check=False,
    )


def condition(obj: dict, kind: str) -> dict:
    return next(c for c in obj["status"].get("conditions", []) if c["type"] == kind)


def replica_sets(cluster, namespace: str) -> dict[str, dict]:
    """Image -> {revision, replicas, ready} for each ReplicaSet of the app."""
    found = {}
    for rs in get(cluster, namespace, "replicasets", "-l", f"app.kubernetes.io/name={APP}")[
        "items"
    ]:
        image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
        found[image] = {
            "revision": int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
            "replicas": rs["spec"]["replicas"],
            "ready": rs["status"].get("readyReplicas", 0),
        }
    return found


def app_pods(cluster, namespace: str) -> list[dict]:
    """The app's pods that are not being deleted."""
    items = get(cluster, namespace, "pods", "-l", f"app.kubernetes.io/name={APP}")["items"]
    return [pod for pod in items if "deletionTimestamp" not in pod["metadata"]]


def ready_endpoints(cluster, namespace: str) -> list[str] | None:
    """Names of the pods the Service's EndpointSlices list as ready, once there are REPLICAS."""
    slices = get(cluster, namespace, "endpointslices", "-l", f"kubernetes.io/service-name={APP}")
    names = sorted(
        e["targetRef"]["name"]
        for s in slices["items"]
        for e in s.get("endpoints") or []
        if e["conditions"].get("ready")
    )
    return names if len(names) == REPLICAS else None


def pods(cluster, namespace: str) -> list[tuple[str, str, str]]:
    """(image, phase, Ready status) of each of the app's pods that is not being deleted."""
    return sorted(
        (
            pod["spec"]["containers"][0]["image"],
            pod["status"].get("phase", ""),
            next(
                (c["status"] for c in pod["status"].get("conditions", []) if c["type"] == "Ready"),
                "Unknown",
            ),
        )
        for pod in app_pods(cluster, namespace)
    )


def set_image(cluster, namespace: str, image: str) -> None:
    cluster.kubectl("-n", namespace, "set", "image", f"deployment/{APP}", f"{CONTAINER}={image}")


@pytest.fixture
def released(kube_cluster, kube_namespace, tmp_path, release_images) -> str:
    """manifests/base applied with image :v1, rolled out to completion."""
    overlay = write_overlay(tmp_path / "overlay", kube_namespace, release_images.v1.image)
    kube_cluster.kubectl("apply", "-k", str(overlay))
    done = rollout_status(kube_cluster, kube_namespace)
    assert done.returncode == 0, done.stderr
    return kube_namespace


def test_manifests_apply_and_roll_out_to_ready_pods_behind_the_service(
    kube_cluster, released, release_images
):
    v1 = release_images.v1.image
    deployment = get(kube_cluster, released, "deployment", APP)
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]
    assert deployment["status"]["readyReplicas"] == REPLICAS
    assert deployment["status"]["updatedReplicas"] == REPLICAS
    assert condition(deployment, "Available")["status"] == "True"
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert replica_sets(kube_cluster, released) == {
        v1: {"revision": 1, "replicas": REPLICAS, "ready": REPLICAS}
    }
    assert pods(kube_cluster, released) == [(v1, "Running", "True")] * REPLICAS

    service = get(kube_cluster, released, "service", APP)
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    # The EndpointSlice controller catches up on its own time; wait (bounded) until it lists both.
    ready = wait_for(
        lambda: ready_endpoints(kube_cluster, released) or None,
        timeout=30,
        what="the Service's EndpointSlices did not list both pods",
    )
    assert ready == sorted(pod["metadata"]["name"] for pod in app_pods(kube_cluster, released))
    # The rest of the base came along too.
    assert get(kube_cluster, released, "hpa", APP)["spec"]["minReplicas"] == REPLICAS
    assert get(kube_cluster, released, "pdb", APP)["spec"]["maxUnavailable"] == 1


def test_never_ready_rollout_hits_the_progress_deadline_and_undo_restores_v1(
    kube_cluster, released, release_images
):
    v1, broken = release_images.v1.image, release_images.never_ready.image
    set_image(kube_cluster, released, broken)

    done = rollout_status(kube_cluster, released)
    assert done.returncode != 0
    assert "exceeded its progress deadline" in done.stderr
    deployment = get(kube_cluster, released, "deployment", APP)
    assert condition(deployment, "Progressing")["status"] == "False"
    assert condition(deployment, "Progressing")["reason"] == "ProgressDeadlineExceeded"
    # maxUnavailable 0: v1 keeps its full capacity; the one surge pod runs but is not Ready.
    assert replica_sets(kube_cluster, released) == {
        v1: {"revision": 1, "replicas": REPLICAS, "ready": REPLICAS},
        broken: {"revision": 2, "replicas": 1, "ready": 0},
    }
    assert pods(kube_cluster, released) == sorted(
        [(v1, "Running", "True")] * REPLICAS + [(broken, "Running", "False")]
    )

    kube_cluster.kubectl("-n", released, "rollout", "undo", f"deployment/{APP}")
    done = rollout_status(kube_cluster, released)
    assert done.returncode == 0, done.stderr
    deployment = get(kube_cluster, released, "deployment", APP)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == v1
    assert condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    # Undo re-uses v1's ReplicaSet under the next revision number; the broken one is scaled away.
    assert replica_sets(kube_cluster, released) == {
        v1: {"revision": 3, "replicas": REPLICAS, "ready": REPLICAS},
        broken: {"revision": 2, "replicas": 0, "ready": 0},
    }


def test_undo_after_a_good_rollout_goes_back_to_the_previous_revision(
    kube_cluster, released, release_images
):
    v1, v2 = release_images.v1.image, release_images.v2.image
    set_image(kube_cluster, released, v2)
    done = rollout_status(kube_cluster, released)
    assert done.returncode == 0, done.stderr
    assert replica_sets(kube_cluster, released) == {
        v1: {"revision": 1, "replicas": 0, "ready": 0},
        v2: {"revision": 2, "replicas": REPLICAS, "ready": REPLICAS},
    }

    kube_cluster.kubectl("-n", released, "rollout", "undo", f"deployment/{APP}")
    done = rollout_status(kube_cluster, released)
    assert done.returncode == 0, done.stderr
    assert replica_sets(kube_cluster, released) == {
        v1: {"revision": 3, "replicas": REPLICAS, "ready": REPLICAS},
        v2: {"revision": 2, "replicas": 0, "ready": 0},
    }
    assert pods(kube_cluster, released) == [(v1, "Running", "True")] * REPLICAS
