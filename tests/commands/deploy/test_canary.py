"""Progressive delivery on real pods (the local cluster's kubelet node): staging and its pass,
the production canary judged on the pods' own /metrics through the API server's pod proxy,
promoted or aborted by itself while stable serves, the records in the registry, and rollback."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from aiship.clients.kubectl import Kubectl
from aiship.clients.records import EVALUATION
from aiship.clients.registry import RegistryClient, RegistryLogin
from aiship.commands.deploy.analysis import load_analysis
from aiship.commands.deploy.canary import CANARY, read_pods
from aiship.commands.deploy.kubernetes import deploy_kubernetes, release_to_roll_back
from aiship.commands.deploy.proof import DEPLOY, STAGING_PASS, Ledger, proven_deploy
from aiship.commands.deploy.release import KubernetesTarget, Release
from aiship.local.traffic import digits_rows
from aiship.support.errors import RolledBack
from tests.repo import MANIFESTS, REPO_ROOT

pytestmark = pytest.mark.docker

PAUSE = 3.0  # seconds a step is watched here; the traffic gives it its samples in that time


@pytest.fixture(scope="module")
def analysis():
    shipped = load_analysis(MANIFESTS / "analysis.yaml")
    return replace(shipped, steps=tuple(replace(s, pause=PAUSE) for s in shipped.steps))


@pytest.fixture
def staging_namespace(kube_cluster, kube_namespace):
    name = f"{kube_namespace}-staging"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def ledger(kube_cluster) -> Ledger:
    return Ledger(RegistryClient(RegistryLogin(kube_cluster.registry)), "aiship")


def deploy(kube_cluster, namespace, release: Release, overlay="staging", canary=None, **more):
    return deploy_kubernetes(
        release,
        KubernetesTarget(kube_cluster.kubeconfig, namespace, overlay=overlay),
        timeout=120,
        smoke_test=True,
        canary=canary,
        **more,
    )


def recorded(kube_cluster, namespace, release, environment, overlay, canary=None, **options):
    return proven_deploy(
        lambda: deploy(kube_cluster, namespace, release, overlay, canary),
        ledger=ledger(kube_cluster),
        release=release,
        environment=environment,
        strategy="canary" if canary else "rolling",
        where=f"namespace {namespace}",
        smoke_tested=True,
        **options,
    )


def get(kube_cluster, namespace, *what) -> dict | None:
    return Kubectl(kube_cluster.kubeconfig, namespace).get(*what)


def traffic(kube_cluster, namespace):
    """Predictions of the digits test split, 16 rows a request, through the Service."""
    return kube_cluster.service_traffic(namespace, rows=digits_rows(), batch_size=16)


def test_a_good_release_passes_staging_and_the_canary_is_promoted_then_rolled_back(
    kube_cluster, kube_namespace, staging_namespace, release_images, analysis
):
    v1, v2 = release_images.v1, release_images.v2
    production = kube_namespace
    first = {"skip_staging_check": True, "skip_evaluation_check": True}
    recorded(kube_cluster, production, v1, "production", "production", **first)
    assert ledger(kube_cluster).runs("production") == v1.digest

    staged = recorded(kube_cluster, staging_namespace, v2, "staging", "staging")
    # What CI's evaluate-model writes for a model that passed (tests/commands/test_evaluate).
    ledger(kube_cluster).write(v2.digest, EVALUATION, {"passed": True})
    assert staged.result == "deployed"
    with traffic(kube_cluster, production) as load:
        promoted = recorded(kube_cluster, production, v2, "production", "production", analysis)
    assert promoted.result == "promoted"
    assert ledger(kube_cluster).runs("production") == v2.digest
    assert load.failures == [] and load.ok > 0
    assert len(promoted.checks) == len(analysis.steps)
    assert all("error rate" in line and "p99" in line for line in promoted.checks)
    stable = get(kube_cluster, production, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v2.image
    assert get(kube_cluster, production, "deployment", CANARY) is None

    digest = v2.image.rsplit("@", 1)[1]
    (staging_pass,) = ledger(kube_cluster).read(digest, STAGING_PASS)
    assert staging_pass.payload["environment"] == "staging"
    assert staging_pass.payload["model"]["sha256"] == v2.model_sha256
    deploys = ledger(kube_cluster).read(digest, DEPLOY)
    assert [(d.payload["environment"], d.payload["result"]) for d in deploys] == [
        ("staging", "deployed"),
        ("production", "promoted"),
    ]
    assert deploys[-1].payload["checks"] == list(promoted.checks)

    # Rollback: production back on v1 at once, no analysis, smoke-tested.
    previous = release_to_roll_back(KubernetesTarget(kube_cluster.kubeconfig, production))
    assert previous == v1
    back = deploy(kube_cluster, production, previous, "production")
    assert back.result == "deployed" and back.previous_image == v2.image
    stable = get(kube_cluster, production, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v1.image


@pytest.mark.parametrize(
    ("candidate", "failed_check"),
    [("answers_5xx", "error rate"), ("slow", "p99"), ("skewed", "prediction")],
)
def test_a_bad_candidate_is_aborted_at_the_first_step_and_stable_serves_untouched(
    kube_cluster, kube_namespace, release_images, analysis, candidate, failed_check
):
    v1, bad = release_images.v1, getattr(release_images, candidate)
    deploy(kube_cluster, kube_namespace, v1)
    before = get(kube_cluster, kube_namespace, "deployment", "aiship")
    kubectl = Kubectl(kube_cluster.kubeconfig, kube_namespace)
    with (
        traffic(kube_cluster, kube_namespace) as load,
        pytest.raises(RolledBack, match=rf"aborted at step 1/.*{failed_check}") as aborted,
    ):
        deploy(kube_cluster, kube_namespace, bad, canary=analysis)
    stable_pods = dict(read_pods(kubectl, "aiship.io/track=stable"))
    assert aborted.value.outputs["result"] == "aborted"
    after = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == v1.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    # The stable share never failed: stable's pods answered no 5xx, and every error a client saw
    # was one of the canary's 500s.
    assert stable_pods and all(m.errors == 0 for _, m in stable_pods.values())
    assert all(f.startswith("500 ") for f in load.failures)
    if candidate != "answers_5xx":
        assert load.failures == []


def test_production_refuses_a_digest_without_a_staging_pass(
    kube_cluster, kube_namespace, release_images
):
    # A digest no test deploys to staging: v1's image with another tag's digest would do, but
    # the never_ready variant has never been near staging, so it has no pass.
    unproven = release_images.never_ready
    command = [
        sys.executable,
        "-m",
        "aiship",
        "deploy",
        "--target",
        "kubernetes",
        "--kubeconfig",
        str(kube_cluster.kubeconfig),
        "--namespace",
        kube_namespace,
        "--overlay",
        "staging",
        "--environment",
        "production",
        "--image",
        unproven.image,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 9, done.stderr
    assert f"{unproven.image} has no staging pass: deploy it to staging first" in done.stderr
    assert get(kube_cluster, kube_namespace, "deployment", "aiship") is None


# What a namespace-scoped deployer needs, less pods/proxy: it cannot read the pods' /metrics.
DEPLOYER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer-without-proxy}
rules:
  - apiGroups: [apps]
    resources: [deployments, replicasets]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [pods, services, events]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [pods/log]
    verbs: [get]
  - apiGroups: [""]
    resources: [pods/portforward]
    verbs: [get, create]
  - apiGroups: [autoscaling]
    resources: [horizontalpodautoscalers]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [get, list, watch, create, update, patch, delete]
"""


def deployer_kubeconfig(kube_cluster, namespace, folder):
    """A kubeconfig for a service account bound to DEPLOYER_ROLE in NAMESPACE (a token)."""
    run = kube_cluster.kubectl
    run("-n", namespace, "apply", "-f", "-", input=DEPLOYER_ROLE)
    run("-n", namespace, "create", "serviceaccount", "deployer")
    run(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "deployer",
        "--role=deployer-without-proxy",
        f"--serviceaccount={namespace}:deployer",
    )
    token = run("-n", namespace, "create", "token", "deployer").stdout.strip()
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    config["users"] = [{"name": "deployer", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "deployer"
    path = folder / "deployer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_analysis_that_cannot_read_the_metrics_aborts_rather_than_promotes(
    kube_cluster, kube_namespace, release_images, analysis, tmp_path
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    kubeconfig = deployer_kubeconfig(kube_cluster, kube_namespace, tmp_path)
    with pytest.raises(RolledBack, match=r"cannot read /metrics of pod .* needs get on pods/proxy"):
        deploy_kubernetes(
            v2,
            KubernetesTarget(kubeconfig, kube_namespace, overlay="staging"),
            timeout=120,
            smoke_test=True,
            canary=analysis,
        )
    stable = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v1.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
