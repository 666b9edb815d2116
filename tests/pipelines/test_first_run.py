"""What a first run on the real services needs of the pipeline files themselves: names the
services accept, tools the hosted images lack, logins that do not expire before they are used."""

from __future__ import annotations

import re
from importlib import resources

import yaml

from steps.support.paths import REPO_ROOT
from tests.pipelines.azure_yaml import AZURE, load, pipeline

GITHUB = REPO_ROOT / ".github" / "workflows"
PINNED_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def github_jobs(workflow: str) -> dict:
    return yaml.safe_load((GITHUB / workflow).read_text())["jobs"]


def index_of(steps: list[dict], found) -> int:
    return next(i for i, step in enumerate(steps) if found(step))


def runs(command: str):
    return lambda step: (
        f"python -m steps {command}"
        in (step.get("run") or (step.get("inputs") or {}).get("inlineScript") or "")
    )


def uses(action: str):
    return lambda step: str(step.get("uses", "")).startswith(action + "@")


def test_no_deployment_job_takes_a_name_the_schema_reserves():
    vendor = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    schema_text = (vendor / "azure-pipelines.json").read_text(encoding="utf-8")
    reserved = set(re.findall(r"The word (\w+) is a keyword and is unsupported", schema_text))
    assert reserved == {"deploy"}  # as the official schema says it
    names = [
        job["deployment"]
        for name in ("ci.yml", "release.yml")
        for stage in pipeline(name)["stages"]
        for job in stage["jobs"]
        if "deployment" in job
    ]
    assert names and not reserved & set(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in names)


def test_the_github_release_installs_a_pinned_kubelogin_before_the_credentials():
    steps = github_jobs("release.yml")["deploy"]["steps"]
    install = index_of(steps, uses("azure/use-kubelogin"))
    assert PINNED_VERSION.match(steps[install]["with"]["kubelogin-version"])
    assert install < index_of(steps, runs("aks-credentials"))


def test_the_azure_release_installs_a_pinned_kubelogin_before_the_credentials():
    stage = next(s for s in pipeline("release.yml")["stages"] if s["stage"] == "Deploy")
    steps = stage["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    install = index_of(steps, lambda step: step.get("task") == "KubeloginInstaller@0")
    assert PINNED_VERSION.match(steps[install]["inputs"]["kubeloginVersion"])
    assert install < index_of(steps, runs("aks-credentials"))


def test_azure_login_is_the_last_thing_before_the_steps_that_use_it():
    """Its federated assertion is short-lived: installs go before it, never after."""
    for workflow in ("ci.yml", "release.yml"):
        for name, job in github_jobs(workflow).items():
            steps = job["steps"]
            if not any(uses("azure/login")(step) for step in steps):
                continue
            login = index_of(steps, uses("azure/login"))
            first_step = index_of(steps, lambda step: "python -m steps" in step.get("run", ""))
            between = steps[login + 1 : first_step]
            assert all("uses" not in s and "pip install" not in s.get("run", "") for s in between)
            assert index_of(steps, lambda s: "pip install" in s.get("run", "")) < login, name


def test_the_release_deploys_with_its_own_identity_when_there_is_one():
    login = next(s for s in github_jobs("release.yml")["deploy"]["steps"] if uses("azure/login")(s))
    assert login["with"]["client-id"] == (
        "${{ vars.AZURE_DEPLOY_CLIENT_ID || vars.AZURE_CLIENT_ID }}"
    )
    deploy = load((AZURE / "release.yml").read_text())
    assert {p["name"] for p in deploy["parameters"]} >= {
        "serviceConnection",
        "deployServiceConnection",
    }


def test_the_test_job_builds_on_the_real_base_image_with_go_and_a_cache():
    """Hosted runners run jobs as a non-root user: debootstrap (root only) cannot make the base
    image there, but they can pull the real one. The control plane needs Go 1.26 and a cache."""
    job = github_jobs("ci.yml")["test"]
    assert job["env"]["BASE_IMAGE"] == "python:3.11-slim"
    go = next(s for s in job["steps"] if uses("actions/setup-go")(s))
    assert go["with"]["go-version"] == "1.26"
    cache = next(s for s in job["steps"] if uses("actions/cache")(s))
    assert cache["with"]["path"] == "~/.cache/aiship" and "tools/kube/" in cache["with"]["key"]

    azure_test = pipeline("ci.yml")["stages"][0]["jobs"][0]
    assert azure_test["variables"]["BASE_IMAGE"] == "python:3.11-slim"
    tasks = {step.get("task"): step for step in azure_test["steps"]}
    assert tasks["GoTool@0"]["inputs"]["version"] == "1.26"
    assert "tools/kube/kubernetes/go.sum" in tasks["Cache@2"]["inputs"]["key"]
    assert tasks["Cache@2"]["inputs"]["path"] == "$(Pipeline.Workspace)/.cache/aiship"
    assert azure_test["variables"]["XDG_CACHE_HOME"] == "$(Pipeline.Workspace)/.cache"


def test_releases_run_one_at_a_time_in_both_systems():
    assert yaml.safe_load((GITHUB / "release.yml").read_text())["concurrency"] == {
        "group": "release",
        "cancel-in-progress": False,
    }
    assert load((AZURE / "release.yml").read_text())["lockBehavior"] == "runLatest"
