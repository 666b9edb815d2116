"""Progressive delivery on real pods (the local cluster's kubelet node): staging and its pass,
the production canary judged on the pods' own /metrics through the API server's pod proxy,
promoted or aborted by itself while stable serves, the records in the registry, and rollback."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml

from aiship.clients.kubectl import UNANSWERED, Kubectl
from aiship.clients.records import EVALUATION
from aiship.clients.registry import RegistryClient, RegistryLogin
from aiship.commands.deploy import canary
from aiship.commands.deploy.analysis import load_analysis
from aiship.commands.deploy.canary import CANARY, read_pods
from aiship.commands.deploy.canary_state import CanaryState
from aiship.commands.deploy.kubernetes import (
    PREVIOUS_ANNOTATION,
    deploy_kubernetes,
    release_to_roll_back,
)
from aiship.commands.deploy.proof import DEPLOY, STAGING_PASS, Ledger, proven_deploy
from aiship.commands.deploy.release import KubernetesTarget, Release
from aiship.local.traffic import digits_rows
from aiship.support.errors import RolledBack
from aiship.support.waiting import wait_for
from tests.partition import Partition, partitioned_kubeconfig
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


def deploy(
    kube_cluster,
    namespace,
    release: Release,
    overlay="staging",
    canary=None,
    kubeconfig=None,
    timeout=120,
    smoke_test=True,
):
    """deploy_kubernetes as the release runs it, with the cluster's kubeconfig unless another
    (a narrower deployer's, a partitioned one) is given."""
    return deploy_kubernetes(
        release,
        KubernetesTarget(kubeconfig or kube_cluster.kubeconfig, namespace, overlay=overlay),
        timeout=timeout,
        smoke_test=smoke_test,
        canary=canary,
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

    # Rollback, the command: production back on v1 at once, no analysis, smoke-tested, recorded.
    point = release_to_roll_back(KubernetesTarget(kube_cluster.kubeconfig, production))
    assert point.release == v1 and point.canary is None
    done = run_aiship(kube_cluster, production, "rollback", "--json")
    assert done.returncode == 0, done.stderr
    back = json.loads(done.stdout)
    assert (back["result"], back["image"], back["previous_image"]) == (
        "rolled-back",
        v1.image,
        v2.image,
    )
    stable = get(kube_cluster, production, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v1.image
    record = ledger(kube_cluster).read(v1.digest, DEPLOY)[-1].payload
    assert (record["result"], record["strategy"]) == ("rolled-back", "rollback")
    assert ledger(kube_cluster).runs("production") == v1.digest


@pytest.mark.parametrize(
    ("candidate", "failed_check"),
    [
        ("answers_5xx", "error rate"),
        ("answers_4xx", "4xx rate"),
        ("slow", "p99"),
        ("skewed", "prediction"),
    ],
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
    listed = kubectl.get("pods", "-l", "aiship.io/track=stable")["items"]
    stable_pods = dict(read_pods(kubectl, listed))
    assert aborted.value.outputs["result"] == "aborted"
    after = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == v1.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    # The stable share never failed: stable's pods answered no 5xx nor 4xx, and every error a
    # client saw was one of the canary's own (its 500s, its 400s).
    assert stable_pods and all(m.errors == m.refused == 0 for _, m in stable_pods.values())
    own = {"answers_5xx": "500 ", "answers_4xx": "400 "}.get(candidate)
    assert all(own and f.startswith(own) for f in load.failures), load.failures[:3]


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


def deployer_kubeconfig(kube_cluster, namespace, folder, role=DEPLOYER_ROLE):
    """A kubeconfig for a service account bound to ROLE in NAMESPACE (a token)."""
    run = kube_cluster.kubectl
    run("-n", namespace, "apply", "-f", "-", input=role)
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
        deploy(kube_cluster, kube_namespace, v2, canary=analysis, kubeconfig=kubeconfig)
    stable = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v1.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None


# A release that dies: cancelled (SIGTERM), killed (SIGKILL), then cleaned up or resumed by the
# next command, each on real pods with the digits traffic flowing through the Service.


# These tests are about a release's life and death, not its latency: a slack that a loaded
# machine's first requests to a new pod stay within (the shipped rule is held in the tests above).
LATENCY_SLACK = 1.0


def analysis_file(folder, pauses=(PAUSE, 300.0)) -> Path:
    """The shipped analysis with these pauses (a long last step to interrupt) and the slack."""
    shipped = yaml.safe_load((MANIFESTS / "analysis.yaml").read_text())
    for step, pause in zip(shipped["steps"], pauses, strict=True):
        step["pause"] = pause
    shipped["checks"]["latencyP99"]["slackSeconds"] = LATENCY_SLACK
    shipped["timeout"] = sum(pauses) + 60
    path = folder / "analysis.yaml"
    path.write_text(yaml.safe_dump(shipped))
    return path


def aiship(kube_cluster, namespace, command: str, *args: str) -> list[str]:
    where = ("--target", "kubernetes", "--kubeconfig", str(kube_cluster.kubeconfig))
    return [sys.executable, "-m", "aiship", command, *where, "--namespace", namespace, *args]


def run_aiship(kube_cluster, namespace, command: str, *args: str) -> subprocess.CompletedProcess:
    """COMMAND run to its end as a person runs it: outside CI (no run of a CI system's)."""
    return subprocess.run(
        aiship(kube_cluster, namespace, command, *args),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "TF_"))},
    )


def canary_deploy(kube_cluster, namespace, release: Release, analysis_path: Path) -> list[str]:
    """The deploy command a release job runs: a canary, smoke-tested, its outcome recorded."""
    return aiship(
        kube_cluster,
        namespace,
        "deploy",
        *("--overlay", "staging", "--environment", "staging", "--strategy", "canary"),
        *("--analysis", str(analysis_path), "--image", release.image, "--timeout", "120"),
        *("--revision", release.revision, "--model-version", release.model_version),
        *("--model-sha256", release.model_sha256, "--smoke-test", "true"),
    )


def judged(kube_cluster, namespace, steps: int, process: subprocess.Popen) -> CanaryState:
    """The canary's state once STEPS steps are judged passed (the deploy still running)."""

    def state() -> CanaryState | None:
        assert process.poll() is None, process.communicate()[1]
        canary = get(kube_cluster, namespace, "deployment", CANARY)
        found = CanaryState.of(canary) if canary else None
        return found if found and len(found.passed) >= steps else None

    return wait_for(
        state, timeout=180, what=f"the canary's step {steps} was not judged", interval=1
    )


def stable_untouched(kube_cluster, namespace, before: dict) -> None:
    after = get(kube_cluster, namespace, "deployment", "aiship")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]


def test_sigterm_in_step_2_removes_the_canary_and_exits_8_in_one_line(
    kube_cluster, kube_namespace, release_images, tmp_path
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    before = get(kube_cluster, kube_namespace, "deployment", "aiship")
    command = canary_deploy(kube_cluster, kube_namespace, v2, analysis_file(tmp_path))
    with traffic(kube_cluster, kube_namespace) as load:
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        judged(kube_cluster, kube_namespace, 1, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 8, stderr
    (error,) = [line for line in stderr.splitlines() if "error:" in line]
    assert (
        f"the canary of {v2.image} was aborted at step 2/2 (interrupted by SIGTERM); the canary "
        f"was removed; stable {v1.image} serves, untouched" in error
    )
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    stable_untouched(kube_cluster, kube_namespace, before)
    assert load.failures == [] and load.ok > 0
    # The record of the failed deploy, read back from the registry.
    record = ledger(kube_cluster).read(v2.digest, DEPLOY)[-1].payload
    assert record["result"] == "aborted" and "interrupted by SIGTERM" in record["error"]
    assert record["checks"][0].startswith("canary step 1/2")


def killed_in_step_2(kube_cluster, namespace, release: Release, folder) -> CanaryState:
    """A canary deploy SIGKILLed in its second step (nothing of it runs after): what it left."""
    command = canary_deploy(kube_cluster, namespace, release, analysis_file(folder))
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    judged(kube_cluster, namespace, 1, process)
    process.kill()
    process.communicate(timeout=30)
    left = CanaryState.of(get(kube_cluster, namespace, "deployment", CANARY))
    assert left is not None and [step.number for step in left.passed] == [1]
    assert left.image == release.image and left.run.endswith(f":{process.pid}")
    return left


def test_a_killed_canary_is_resumed_by_the_next_deploy_after_its_last_judged_step(
    kube_cluster, kube_namespace, release_images, analysis, tmp_path, caplog
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    with traffic(kube_cluster, kube_namespace) as load:
        left = killed_in_step_2(kube_cluster, kube_namespace, v2, tmp_path)
        with caplog.at_level(logging.INFO):
            promoted = deploy(
                kube_cluster,
                kube_namespace,
                v2,
                canary=replace(analysis, p99_slack_seconds=LATENCY_SLACK),
            )
    assert f"resuming the canary of {v2.image} after step 1/2, judged by {left.run}" in caplog.text
    assert promoted.result == "promoted"
    assert promoted.checks[0] == f"{left.steps[0].line} (judged by {left.run})"
    assert promoted.checks[1].startswith("canary step 2/2")
    stable = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v2.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    assert load.failures == [] and load.ok > 0


@pytest.mark.parametrize("command", ["abort", "rollback"])
def test_a_killed_canary_is_removed_by_abort_or_rollback_and_stable_is_untouched(
    kube_cluster, kube_namespace, release_images, tmp_path, command
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    before = get(kube_cluster, kube_namespace, "deployment", "aiship")
    with traffic(kube_cluster, kube_namespace) as load:
        killed_in_step_2(kube_cluster, kube_namespace, v2, tmp_path)
        done = run_aiship(kube_cluster, kube_namespace, command, "--json")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    if command == "abort":
        assert outputs == {"result": "removed", "canary": v2.image, "started_by": ANY}
    else:  # only the canary goes: stable is the last release judged good
        assert (outputs["result"], outputs["image"]) == ("rolled-back", v1.image)
        assert outputs["previous_image"] == v2.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    stable_untouched(kube_cluster, kube_namespace, before)
    assert load.failures == [] and load.ok > 0


def test_a_canary_that_fails_its_smoke_test_is_aborted_at_step_1(
    kube_cluster, kube_namespace, release_images, analysis
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    before = get(kube_cluster, kube_namespace, "deployment", "aiship")
    mislabelled = replace(v2, model_sha256="0" * 64)  # the smoke test expects another model
    with pytest.raises(
        RolledBack, match=r"aborted at step 1/2 \(smoke test: .*; the canary was removed"
    ):
        deploy(kube_cluster, kube_namespace, mislabelled, canary=analysis)
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    stable_untouched(kube_cluster, kube_namespace, before)


def test_a_canary_whose_pods_never_get_ready_is_aborted_without_waiting_on_it_forever(
    kube_cluster, kube_namespace, release_images, analysis
):
    v1 = release_images.v1
    deploy(kube_cluster, kube_namespace, v1)
    before = get(kube_cluster, kube_namespace, "deployment", "aiship")
    with pytest.raises(
        RolledBack, match=r"aborted at step 1/2 \(.*ready.*\); the canary was removed"
    ):
        deploy(
            kube_cluster,
            kube_namespace,
            release_images.never_ready,
            canary=analysis,
            timeout=20,
            smoke_test=False,
        )
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    stable_untouched(kube_cluster, kube_namespace, before)


def test_a_canary_that_cannot_be_judged_in_time_is_aborted_at_the_time_limit(
    kube_cluster, kube_namespace, release_images, analysis
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    # No traffic, and more samples than could come: no check can pass before the limit.
    starved = replace(analysis, timeout=PAUSE * 2, min_samples=10**9)
    with pytest.raises(
        RolledBack, match=r"aborted at step 1/2 \(the analysis's time limit \(6 s\)"
    ):
        deploy(kube_cluster, kube_namespace, v2, canary=starved)
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None


def test_a_canary_that_cannot_be_removed_says_so_and_names_the_command_that_removes_it(
    kube_cluster, kube_namespace, release_images, analysis, tmp_path, monkeypatch
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    # A deployer that may not read the metrics (so the canary aborts) nor delete Deployments.
    role = DEPLOYER_ROLE.replace(
        "get, list, watch, create, update, patch, delete]",
        "get, list, watch, create, update, patch]",
        1,
    )
    kubeconfig = deployer_kubeconfig(kube_cluster, kube_namespace, tmp_path, role)
    monkeypatch.setattr(canary, "CLEANUP_SECONDS", 2)
    with pytest.raises(RolledBack) as aborted:
        deploy(
            kube_cluster,
            kube_namespace,
            v2,
            canary=analysis,
            kubeconfig=kubeconfig,
            smoke_test=False,
        )
    message = str(aborted.value)
    assert "the canary could NOT be removed" in message and "may still serve its share" in message
    removal = f"kubectl --namespace {kube_namespace} delete deployment {CANARY}"
    assert f"remove it with `{removal}`" in message
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is not None  # it is still there
    kube_cluster.kubectl(*removal.split()[1:])
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None


def cut_for(partition: Partition, seconds: float, after: Callable[[], bool]) -> threading.Thread:
    """A thread that cuts PARTITION once AFTER holds, for SECONDS."""

    def run() -> None:
        wait_for(lambda: after() or None, timeout=180, what="the moment to cut", interval=0.5)
        partition.cut()
        time.sleep(seconds)
        partition.restore()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def step_judged(kube_cluster, namespace, steps: int) -> Callable[[], bool]:
    def judged_yet() -> bool:
        canary = get(kube_cluster, namespace, "deployment", CANARY)
        state = CanaryState.of(canary) if canary else None
        return bool(state and len(state.passed) >= steps)

    return judged_yet


def test_an_api_server_unreachable_for_60_s_mid_step_is_ridden_out_and_the_canary_promoted(
    kube_cluster, kube_namespace, release_images, analysis, tmp_path
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    patient = replace(
        analysis,
        steps=(analysis.steps[0], replace(analysis.steps[1], pause=20.0)),
        unhealthy_seconds=90,
        timeout=300,
        p99_slack_seconds=LATENCY_SLACK,
    )
    with (
        partitioned_kubeconfig(kube_cluster.kubeconfig, tmp_path) as (kubeconfig, partition),
        traffic(kube_cluster, kube_namespace) as load,  # the clients keep their own route
    ):
        outage = cut_for(partition, 60, step_judged(kube_cluster, kube_namespace, 1))
        promoted = deploy(kube_cluster, kube_namespace, v2, canary=patient, kubeconfig=kubeconfig)
        outage.join(timeout=120)
    assert promoted.result == "promoted" and len(promoted.checks) == 2
    assert partition.cut_off.is_set() is False  # the outage happened, and ended, mid-release
    stable = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v2.image
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    assert load.failures == [] and load.ok > 0


def test_an_api_server_unreachable_past_the_bound_aborts_and_names_what_removes_the_canary(
    kube_cluster, kube_namespace, release_images, analysis, tmp_path, monkeypatch
):
    v1, v2 = release_images.v1, release_images.v2
    deploy(kube_cluster, kube_namespace, v1)
    before = get(kube_cluster, kube_namespace, "deployment", "aiship")
    impatient = replace(
        analysis,
        steps=(analysis.steps[0], replace(analysis.steps[1], pause=120.0)),
        unhealthy_seconds=10,
        timeout=300,
        p99_slack_seconds=LATENCY_SLACK,
    )
    monkeypatch.setattr(canary, "CLEANUP_SECONDS", 5)  # and the outage outlasts the clean-up
    with (
        partitioned_kubeconfig(kube_cluster.kubeconfig, tmp_path) as (kubeconfig, partition),
        traffic(kube_cluster, kube_namespace) as load,
    ):
        outage = cut_for(partition, 60, step_judged(kube_cluster, kube_namespace, 1))
        with pytest.raises(RolledBack) as aborted:
            deploy(
                kube_cluster,
                kube_namespace,
                v2,
                canary=impatient,
                kubeconfig=kubeconfig,
                smoke_test=False,
            )
        outage.join(timeout=120)
    message = str(aborted.value)
    assert "aborted at step 2/2 (" in message and UNANSWERED.search(message), message
    removal = f"kubectl --namespace {kube_namespace} delete deployment {CANARY}"
    assert "the canary could NOT be removed" in message and f"`{removal}`" in message
    # Left with its state, which the next command reads: abort removes it, stable untouched.
    assert CanaryState.of(get(kube_cluster, kube_namespace, "deployment", CANARY)) is not None
    done = run_aiship(kube_cluster, kube_namespace, "abort")
    assert done.returncode == 0, done.stderr
    assert get(kube_cluster, kube_namespace, "deployment", CANARY) is None
    stable_untouched(kube_cluster, kube_namespace, before)
    assert load.ok > 0 and all(f.startswith("5") is False for f in load.failures)


def test_a_rollback_to_a_release_that_does_not_serve_either_puts_back_what_ran(
    kube_cluster, kube_namespace, release_images
):
    v1, v2, broken = release_images.v1, release_images.v2, release_images.never_ready
    deploy(kube_cluster, kube_namespace, v1)
    deploy(kube_cluster, kube_namespace, v2)
    # The release v2 replaced, as the Deployment records it, is one that never gets ready.
    previous = json.dumps(dataclasses.asdict(broken), sort_keys=True)
    kube_cluster.kubectl(
        "-n", kube_namespace, "annotate", "--overwrite", "deployment/aiship",
        f"{PREVIOUS_ANNOTATION}={previous}",
    )  # fmt: skip
    done = subprocess.run(
        [
            *aiship(kube_cluster, kube_namespace, "rollback"),
            "--overlay",
            "staging",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 8, done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "error:" in line]
    assert f"the rollout of {broken.image} failed" in error
    assert f"rolled back to {v2.image}, which serves again (smoke-tested)" in error
    stable = get(kube_cluster, kube_namespace, "deployment", "aiship")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == v2.image
