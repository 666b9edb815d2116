"""The `kube_cluster` fixture: a Kubernetes cluster for tests that drive kubectl.

By default the local control plane (steps/local/kube_cluster.py, the code behind
`python -m steps local cluster up`), started once per session and stopped at its end. When
KUBECONFIG is set, its cluster (kind, minikube, AKS) is used instead; tests then work in namespaces
of their own. Use them from a conftest:
`from tests.kubecluster import kube_cluster, kube_namespace  # noqa: F401`.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from steps.clients.kubectl import kubectl_path
from steps.local.kube_cluster import NEVER_READY_MARKER, down, up
from steps.support.processes import last_line

# Where test images "live". The local cluster never pulls them (kwok simulates the kubelet); on an
# existing cluster, push the app's image there as :v1 and :v2 (the never-ready tag is never pushed,
# so it cannot be pulled and never becomes ready either).
IMAGE_REPOSITORY = os.environ.get("AISHIP_TEST_IMAGE_REPOSITORY", "127.0.0.1:5000/aiship")


@dataclass(frozen=True)
class KubeCluster:
    """A cluster reachable through `kubeconfig`; `local` when this session started it."""

    kubeconfig: Path
    local: bool

    def kubectl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess:
        command = [str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"`kubectl {' '.join(args)}` failed: {last_line(done.stderr)}")
        return done

    def image(self, tag: str) -> str:
        return f"{IMAGE_REPOSITORY}:{tag}"

    def never_ready_image(self) -> str:
        """An image reference whose pods run but never become Ready (tools/kube/README.md)."""
        return f"{IMAGE_REPOSITORY}:{NEVER_READY_MARKER}"


@pytest.fixture(scope="session")
def kube_cluster(request, tmp_path_factory) -> KubeCluster:
    existing = os.environ.get("KUBECONFIG")
    if existing:
        cluster = KubeCluster(Path(existing), local=False)
        cluster.kubectl("get", "nodes", timeout=30)  # fails the session early when unreachable
        return cluster
    state_dir = tmp_path_factory.mktemp("kube-cluster")
    request.addfinalizer(lambda: down(state_dir))  # before up: a half-started one is stopped too
    result = up(state_dir, nodes=2)
    return KubeCluster(Path(result.kubeconfig), local=True)


@pytest.fixture
def kube_namespace(kube_cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"aiship-test-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
