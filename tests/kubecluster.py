"""The `kube_cluster` fixture: the local cluster with its real node, and the images it runs.

The cluster is the code behind `python -m aiship local cluster up` (a control plane and one real
kubelet node), started once per session and stopped at its end. Its node pulls from a registry of
the session's own, into which `release_images` pushes the app's image and variants
(aiship.local.release_variants) that fail in the ways a release really fails: a model that does
not verify, a pod that never gets ready, a process that crashes after start; and canary
candidates, which get ready but answer badly. Use them from a conftest:
`from tests.kubecluster import kube_cluster, kube_namespace, node_registry, release_images`.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiship.clients.kubectl import kubectl_path
from aiship.clients.registry import ImageRef, RegistryLogin
from aiship.commands.deploy.release import Release
from aiship.commands.push_image import push_image
from aiship.local.kube_cluster import down, up
from aiship.local.registry_server import LocalRegistry
from aiship.local.release_variants import broken_releases, canary_releases
from aiship.local.traffic import Traffic, service_traffic
from aiship.support.processes import last_line

REPOSITORY = "aiship"


@dataclass(frozen=True)
class KubeCluster:
    """The session's cluster (its kubeconfig and state) and the registry its node pulls from."""

    kubeconfig: Path
    state_dir: Path
    registry: str  # HOST:PORT

    def kubectl(
        self, *args: str, timeout: float = 60.0, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        command = [str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"`kubectl {' '.join(args)}` failed: {last_line(done.stderr)}")
        return done

    def service_traffic(self, namespace: str, service: str = REPOSITORY, **limits) -> Traffic:
        """Predictions of the digits model through the API server's proxy of the Service."""
        return service_traffic(self.kubeconfig, namespace, service, "digits", **limits)


@pytest.fixture(scope="session")
def node_registry(tmp_path_factory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("node-registry")) as registry:
        yield registry


@pytest.fixture(scope="session")
def kube_cluster(request, tmp_path_factory, node_registry) -> KubeCluster:
    state_dir = tmp_path_factory.mktemp("kube-cluster")
    request.addfinalizer(lambda: down(state_dir))  # before up: a half-started one is stopped too
    result = up(state_dir, registry_ports=(node_registry.port,))
    return KubeCluster(Path(result.kubeconfig), state_dir, node_registry.host)


@pytest.fixture
def kube_namespace(kube_cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards; its pods at once, so that the one
    node's CPU is free for the next test."""
    name = f"aiship-test-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl(
        "-n",
        name,
        "delete",
        "deployments,replicasets,pods",
        "--all",
        "--grace-period=0",
        "--force",
        timeout=90,
        check=False,
    )
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass(frozen=True)
class ReleaseImages:
    """Releases of the app in the node's registry, each pinned by digest."""

    v1: Release  # model digits 1.0.0
    v2: Release  # model digits 2.0.0, another code revision
    bad_model: Release  # its model.onnx does not match model.json: the app refuses to start
    never_ready: Release  # serves on another port than the probes ask: never ready
    crashing: Release  # starts, then exits a few seconds later, again and again
    # Canary candidates (model/canary_models.py): ready like v1, bad only in use.
    answers_5xx: Release  # 500 to every real digit
    answers_4xx: Release  # 400 to every batch of more than one row
    slow: Release  # v1's answers, each some 30 ms later
    skewed: Release  # about half of its answers are "1"


@pytest.fixture(scope="session")
def release_images(
    node_registry, image_builder, trained_model_dir, tmp_path_factory
) -> ReleaseImages:
    import canary_models  # model/: onnx and scikit-learn, only when the images are made
    import train

    login = RegistryLogin(node_registry.host)

    def pushed(model_dir: Path, revision: str) -> Release:
        card = json.loads((model_dir / "model.json").read_text())
        built = image_builder(model_dir, revision=revision)
        target = ImageRef.parse(f"{node_registry.host}/{REPOSITORY}:{revision[:12]}")
        digest = push_image(login, target, source=built.tags[0]).digest
        return Release(f"{target.name}@{digest}", revision, card["version"], card["sha256"])

    model_v2 = tmp_path_factory.mktemp("model-v2")
    train.write_model(model_v2, name="digits", version="2.0.0")
    v1, v2 = pushed(trained_model_dir, "1" * 40), pushed(model_v2, "2" * 40)
    canary_folder = tmp_path_factory.mktemp("canary")
    candidates = canary_releases(login, v1, trained_model_dir, canary_folder, canary_models)
    return ReleaseImages(v1=v1, v2=v2, **broken_releases(login, v1), **candidates)
