"""What a deploy must find proven, against a real registry (the deploy itself is ours, so a
stand-in function): production needs a staging pass and a passing evaluation; a deploy that
leaves an environment running a release points deployed-<environment> at it."""

from __future__ import annotations

import pytest

from aiship.clients.records import EVALUATION, Ledger
from aiship.clients.registry import RegistryClient, RegistryLogin
from aiship.commands.deploy.proof import STAGING_PASS, proven_deploy
from aiship.commands.deploy.release import DeployResult, Release
from aiship.support.errors import RolledBack, Unproven
from tests.clirun import run_steps
from tests.registries import put_image

REPO = "proof"


@pytest.fixture
def ledger(registry) -> Ledger:
    return Ledger(RegistryClient(RegistryLogin(registry.host)), REPO)


@pytest.fixture
def release(registry) -> Release:
    digest = put_image(registry, REPO, "v1", {"app": "1"})
    return Release(f"{registry.host}/{REPO}@{digest}")


def deploy_to(environment: str, ledger: Ledger, release: Release, deploy=None, **skips):
    deployed = []

    def succeed() -> DeployResult:
        deployed.append(release.image)
        return DeployResult("kubernetes", release.image, "deployed", None)

    result = proven_deploy(
        deploy or succeed,
        ledger=ledger,
        release=release,
        environment=environment,
        strategy="rolling",
        where="a test",
        smoke_tested=True,
        **skips,
    )
    return result, deployed


def test_production_needs_a_passing_evaluation_besides_the_staging_pass(ledger, release):
    deploy_to("staging", ledger, release)
    assert ledger.read(release.digest, STAGING_PASS)
    assert ledger.runs("staging") == release.digest and ledger.runs("production") == ""

    with pytest.raises(Unproven, match=r"has no evaluation: run evaluate-model on it"):
        deploy_to("production", ledger, release)
    ledger.write(release.digest, EVALUATION, {"passed": False, "reason": "accuracy 0.5 is low"})
    with pytest.raises(Unproven, match=r"failed its quality gate \(accuracy 0\.5 is low\)"):
        deploy_to("production", ledger, release)
    assert ledger.runs("production") == ""

    ledger.write(release.digest, EVALUATION, {"passed": True})
    result, deployed = deploy_to("production", ledger, release)
    assert result.result == "deployed" and deployed == [release.image]
    assert ledger.runs("production") == release.digest


def test_the_evaluation_check_can_be_skipped_and_a_failed_deploy_moves_no_tag(
    registry, ledger, release
):
    result, _ = deploy_to(
        "production", ledger, release, skip_staging_check=True, skip_evaluation_check=True
    )
    assert result.result == "deployed" and ledger.runs("production") == release.digest

    def fail() -> DeployResult:
        raise RolledBack("the new pods never got ready", outputs={"result": "rolled-back"})

    v2 = Release(f"{registry.host}/{REPO}@{put_image(registry, REPO, 'v2', {'app': '2'})}")
    with pytest.raises(RolledBack):
        deploy_to(
            "production",
            ledger,
            v2,
            deploy=fail,
            skip_staging_check=True,
            skip_evaluation_check=True,
        )
    assert ledger.runs("production") == release.digest


def test_an_environment_that_cannot_name_its_tag_is_refused_before_anything(tmp_path):
    image = f"127.0.0.1:5000/{REPO}@sha256:{'0' * 64}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    done = run_steps(
        "deploy",
        *("--target", "kubernetes", "--image", image, "--namespace", "aiship"),
        *("--kubeconfig", str(kubeconfig), "--environment", "Prod_EU", "--dry-run"),
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --environment 'Prod_EU' cannot name the tag deployed-<environment>: use "
        "lowercase letters, digits and '-'"
    )
