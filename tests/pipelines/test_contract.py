"""The pipeline contract: every `python -m aiship` command of both CI systems, its expressions and
macros substituted the way that system does, run with --dry-run in the environment that system
gives the step, with the settings exactly as `setup github` / `setup azure-devops` write them.
A flag the CLI lacks, a setting the step needs but the pipeline never provides, or an output
name that no step produces fails here, without a cloud account."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiship.app.card import ModelCard
from aiship.clients.registry import ImageRef
from aiship.commands.aks_credentials import AksCredentials
from aiship.commands.attest import Attestation, Verification
from aiship.commands.build_image import BuiltImage
from aiship.commands.deploy.release import DeployResult
from aiship.commands.evaluate import Evaluation
from aiship.commands.image_tags import PromotedImage, ResolvedImage
from aiship.commands.model_store import FetchedModel
from aiship.commands.push_image import PushedImage
from aiship.commands.release_summary import ReleaseSummary
from aiship.commands.setup.common import AZURE_VARIABLES, GITHUB_VARIABLES, parse_variables
from aiship.commands.verify_push import VerifiedImage
from aiship.support.labels import LABEL_MODEL_SHA256, LABEL_REVISION
from tests.pipelines.ci_systems import REVISION, AzureRun, GitHubRun, job_checkout

# What README's "Running it on your Azure" tells a user to set, as they would set it.
SETTINGS = {
    "MODEL_STORE": "https://aishipmodels.blob.core.windows.net/models",
    "MODEL_NAME": "digits",
    "ACR_NAME": "aishipacr",
    "ACR_RESOURCE_GROUP": "rg-images",
    "IMAGE_REPOSITORY": "aiship/app",
    "AZURE_CLIENT_ID": "11111111-aaaa-bbbb-cccc-000000000001",
    "AZURE_TENANT_ID": "11111111-aaaa-bbbb-cccc-000000000002",
    "AZURE_SUBSCRIPTION_ID": "11111111-aaaa-bbbb-cccc-000000000003",
    "AKS_RESOURCE_GROUP": "rg-aks",
    "AKS_CLUSTER": "aks-prod",
    "K8S_NAMESPACE": "aiship",
    "K8S_STAGING_NAMESPACE": "aiship-staging",
    "SIGNING_KEY_ID": "https://aishipkv.vault.azure.net/keys/aiship/0123456789abcdef",
    "SIGNING_IDENTITY": "C=US,ST=WA,O=Example,CN=aiship",
    "NOTATION_AKV_PLUGIN_URL": "https://example.org/notation-azure-kv_1.2.1_linux_amd64.tar.gz",
    "NOTATION_AKV_PLUGIN_SHA256": "a" * 64,
    "NOTATION_AKV_PLUGIN_CONFIG": "self_signed=true",
}
# In Azure DevOps the service connection carries the identity: no client or tenant id to set.
AZURE_SETTINGS = {
    k: v for k, v in SETTINGS.items() if k not in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID")
}

LOGIN_SERVER = "aishipacr.azurecr.io"
DIGEST = "sha256:" + "d" * 64
OLDER = "sha256:" + "0" * 64  # what production ran before
MODEL_SHA256 = "5" * 64
CARD = ModelCard.from_dict(
    {
        "name": "digits",
        "version": "1.0.0",
        "sha256": MODEL_SHA256,
        "framework": "onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
        "created": "2026-11-30T00:00:00Z",
    }
)
TAGGED = ImageRef.parse(f"{LOGIN_SERVER}/aiship/app:{REVISION[:12]}-1.0.0")
# The release runs on today's commit; the image it resolves was built from an older one.
RESOLVED_REVISION = "feedbeef" * 5
RESOLVED_MODEL_SHA256 = "5eed" * 16


def outputs_of(command: str) -> dict[str, object]:
    """What each step hands on, from the steps' own result types (so the names are real)."""
    pinned = f"{TAGGED.name}@{DIGEST}"
    results = {
        "fetch-model": FetchedModel("digits", "1.0.0", MODEL_SHA256, Path("build/model"), 1),
        "build-image": BuiltImage(
            "sha256:" + "1" * 64, (str(TAGGED),), CARD, {LABEL_REVISION: REVISION}
        ),
        "push-image": PushedImage(TAGGED, DIGEST, 1, 3),
        "verify-push": VerifiedImage(
            TAGGED, DIGEST, {LABEL_REVISION: REVISION, LABEL_MODEL_SHA256: MODEL_SHA256}
        ),
        "evaluate-model": Evaluation(pinned, "digits 1.0.0", {"accuracy": 0.97}, (), "", 5.0),
        "promote-image": PromotedImage(f"{TAGGED.name}:main", DIGEST),
        "resolve-image": ResolvedImage(
            pinned, DIGEST, RESOLVED_REVISION, "1.0.0", RESOLVED_MODEL_SHA256
        ),
        "aks-credentials": AksCredentials(
            "/tmp/kubeconfig", "aks-prod", "https://aks", False, True
        ),
        "deploy": DeployResult("kubernetes", pinned, "promoted", f"{TAGGED.name}@{OLDER}"),
        "attest-image": Attestation(
            pinned, "sha256:" + "2" * 64, "sha256:" + "3" * 64, ("sha256:" + "4" * 64,), 9, 1.0
        ),
        "verify-image": Verification(pinned, ("image signed",)),
        "release-summary": ReleaseSummary(
            pinned,
            RESOLVED_REVISION,
            "1.0.0",
            RESOLVED_MODEL_SHA256,
            "passed in aiship-staging",
            f"{TAGGED.name}@{OLDER}",
        ),
        "rollback": DeployResult("kubernetes", f"{TAGGED.name}@{OLDER}", "rolled-back", pinned),
    }
    return results[command].outputs()


def github_variables() -> dict[str, str]:
    """The repository variables `setup github --var ...` writes for SETTINGS."""
    return parse_variables([f"{k}={v}" for k, v in SETTINGS.items()], GITHUB_VARIABLES)


def azure_group() -> dict[str, str]:
    """The variable group `setup azure-devops --var ...` writes for AZURE_SETTINGS."""
    return parse_variables([f"{k}={v}" for k, v in AZURE_SETTINGS.items()], AZURE_VARIABLES)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, trained_model_dir) -> Path:
    """This repository as its own pipelines' jobs check it out, once set up."""
    return job_checkout(tmp_path_factory.mktemp("checkout"), trained_model_dir)


def failures(runs) -> list[str]:
    return [f"{run.where} ({run.command}): {run.stderr.strip()}" for run in runs if not run.ok]


@pytest.mark.parametrize("workflow", ["ci.yml", "release.yml"])
def test_every_github_step_accepts_what_the_workflow_gives_it(workflow, tmp_path, checkout):
    runs = list(
        GitHubRun(workflow, github_variables(), outputs_of, tmp_path, workspace=checkout).runs()
    )

    assert runs and failures(runs) == []


@pytest.mark.parametrize("pipeline", ["ci.yml", "release.yml"])
def test_every_azure_step_accepts_what_the_pipeline_gives_it(pipeline, tmp_path, checkout):
    runs = list(AzureRun(pipeline, azure_group(), outputs_of, tmp_path, workspace=checkout).runs())

    assert runs and failures(runs) == []


@pytest.mark.parametrize("unset", ["MODEL_STORE", "K8S_NAMESPACE", "SIGNING_IDENTITY"])
def test_an_unset_group_variable_stops_each_step_that_reads_it_by_name(unset, tmp_path, checkout):
    """Azure leaves `$(NAME)` as written when NAME is unset: every step that would be handed it,
    on its command line or in its environment, refuses to start and names the variable."""
    group = {k: v for k, v in azure_group().items() if k != unset}
    runs = []
    for pipeline in ("ci.yml", "release.yml"):
        runs += AzureRun(pipeline, group, outputs_of, tmp_path, workspace=checkout).runs()

    refused = [run for run in runs if not run.ok]
    assert refused, f"no step reads {unset}"
    for run in refused:
        assert f"the pipeline variable {unset} is not set" in run.stderr, run.stderr


def test_both_systems_run_the_same_commands_with_the_same_plans(tmp_path, checkout):
    """Same settings, same steps: each step plans the same work in both systems."""
    for name in ("ci.yml", "release.yml"):
        github = list(
            GitHubRun(name, github_variables(), outputs_of, tmp_path, workspace=checkout).runs()
        )
        azure = list(AzureRun(name, azure_group(), outputs_of, tmp_path, workspace=checkout).runs())
        assert [(r.command, r.plan) for r in github] == [(r.command, r.plan) for r in azure]


def test_a_rollback_run_plans_the_same_rollback_in_both_systems(tmp_path, checkout):
    inputs = {"rollback": "true"}
    github = list(
        GitHubRun(
            "release.yml", github_variables(), outputs_of, tmp_path, inputs, workspace=checkout
        ).runs()
    )
    azure = list(
        AzureRun(
            "release.yml",
            azure_group(),
            outputs_of,
            tmp_path,
            {"rollback": True},
            workspace=checkout,
        ).runs()
    )

    assert failures(github) == failures(azure) == []
    assert [(r.command, r.plan) for r in github] == [(r.command, r.plan) for r in azure]
    assert [r.command for r in github] == ["aks-credentials", "rollback"]
    assert "put namespace aiship back on the release it ran before" in github[-1].plan


@pytest.mark.parametrize("system", [GitHubRun, AzureRun])
def test_the_release_deploys_what_it_resolved_to_staging_then_to_production(
    system, tmp_path, checkout
):
    settings = github_variables() if system is GitHubRun else azure_group()
    runs = list(system("release.yml", settings, outputs_of, tmp_path, workspace=checkout).runs())

    staging, production = (run for run in runs if run.command == "deploy")
    for deploy in (staging, production):
        assert f"{DIGEST} (revision {RESOLVED_REVISION}, model 1.0.0)" in deploy.plan
        assert f"expecting model sha256 {RESOLVED_MODEL_SHA256}" in deploy.plan
        assert f"record the outcome with the image in ACR {SETTINGS['ACR_NAME']}" in deploy.plan
    assert "to staging, namespace aiship-staging (overlay staging), rolling" in staging.plan
    assert "to production, namespace aiship (overlay production), through a canary" in (
        production.plan
    )
    summary = next(run for run in runs if run.command == "release-summary")
    assert f"{DIGEST} and what namespace aiship runs" in summary.plan
    commands = [run.command for run in runs]
    assert commands.index(staging.command) < commands.index("release-summary")


@pytest.mark.parametrize("system", ["github", "azure"])
def test_a_queued_digest_never_becomes_a_command(system, tmp_path, checkout):
    """Whatever a person types as the digest of a run reaches the step as data and is refused."""
    marker = tmp_path / "injected"
    hostile = f'"; touch {marker}; echo "$(touch {marker})'
    if system == "github":
        runs = GitHubRun(
            "release.yml", github_variables(), outputs_of, tmp_path, {"digest": hostile}, checkout
        )
    else:
        runs = AzureRun(
            "release.yml", azure_group(), outputs_of, tmp_path, {"digest": hostile}, checkout
        )
    runs = runs.runs()

    resolve = next(runs)
    assert resolve.command == "resolve-image" and resolve.returncode == 2
    assert "--digest" in resolve.stderr and "is not a sha256:<64 hex> digest" in resolve.stderr
    assert not marker.exists()
