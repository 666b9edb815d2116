"""What a first run on the real services needs of the pipeline files themselves: names the
services accept, tools the hosted images lack, logins that do not expire before they are used."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import pytest
import yaml

from aiship.commands.setup.azure_devops import DEPLOY_SERVICE_CONNECTION
from aiship.commands.setup.common import ENVIRONMENT, STAGING
from tests.pipelines.azure_yaml import AZURE, expand, load, pipeline
from tests.pipelines.ci_systems import GITHUB, STEP_COMMAND, github_model
from tests.pipelines.github_model import Scope

PINNED_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
SHA256 = re.compile(r"[0-9a-f]{64}")
RELEASE = "reusable-release.yml"  # release.yml calls it


def github_jobs(workflow: str) -> dict:
    """Every job of a workflow, whichever path runs it."""
    return yaml.safe_load((GITHUB / workflow).read_text())["jobs"]


def reached_jobs(workflow: str, variables: dict | None = None, **inputs: object) -> dict:
    """job id -> the steps the runner reaches in it (actions entered), on the path INPUTS choose;
    each with its `env:` evaluated and what its expressions read (`given` reads its `with:`)."""
    jobs: dict[str, list[dict]] = {}
    for reached in github_model(variables).steps(GITHUB / workflow, inputs):
        step = {**reached.step, "env": dict(reached.env), "scope": reached.scope}
        jobs.setdefault(reached.job.rsplit("/", 1)[-1], []).append(step)
    return jobs


def given(step: dict, name: str) -> str:
    """The value of a reached step's `with:` input NAME, as the runner evaluates it."""
    return step["scope"].text(str(step["with"][name]))


def command_line(step: dict) -> str:
    """The `aiship ...` command line a step's script runs, its variables expanded by bash."""
    with tempfile.TemporaryDirectory() as folder:
        stub = Path(folder, "aiship")  # a program, not a function: the scripts `exec` it
        stub.write_text('#!/bin/bash\nprintf "aiship"; printf " %s" "$@"\n')
        stub.chmod(0o755)
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            env={"PATH": f"{folder}:{os.environ['PATH']}", **step["env"]},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    return done.stdout


def release_jobs(variables: dict | None = None) -> dict:
    """The release's jobs on both paths, a release and a rollback."""
    return reached_jobs("release.yml", variables) | reached_jobs(
        "release.yml", variables, rollback="true"
    )


def index_of(steps: list[dict], found) -> int:
    return next(i for i, step in enumerate(steps) if found(step))


def runs(command: str):
    return lambda step: (
        command
        in STEP_COMMAND.findall(
            step.get("run") or (step.get("inputs") or {}).get("inlineScript") or ""
        )
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
        for name, rollback in (("ci.yml", False), ("release.yml", False), ("release.yml", True))
        for stage in pipeline(name, rollback=rollback)["stages"]
        for job in stage["jobs"]
        if "deployment" in job
    ]
    assert names and not reserved & set(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in names)


def deployment_jobs(**parameters: object) -> dict[str, dict]:
    """The Azure release's deployment jobs by name, on the path PARAMETERS choose."""
    return {
        job["deployment"]: job
        for stage in pipeline("release.yml", **parameters)["stages"]
        for job in stage["jobs"]
        if "deployment" in job
    }


def deployment_steps(job: dict) -> list[dict]:
    return job["strategy"]["runOnce"]["deploy"]["steps"]


CLUSTER_JOBS = ("staging", "production", "rollback")  # in both systems


def installs_kubelogin(step: dict) -> bool:
    return "KUBELOGIN_VERSION" in (step.get("env") or {})


def assert_pinned(env: dict, where: str) -> None:
    assert PINNED_VERSION.match(env["KUBELOGIN_VERSION"]), where
    assert SHA256.fullmatch(env["KUBELOGIN_SHA256"]), where


def test_every_github_job_on_the_cluster_installs_a_pinned_kubelogin_before_the_credentials():
    jobs = release_jobs()
    assert set(CLUSTER_JOBS) <= set(jobs)
    for name in CLUSTER_JOBS:
        steps = jobs[name]
        install = index_of(steps, installs_kubelogin)
        assert_pinned(steps[install]["env"], name)
        assert install < index_of(steps, runs("aks-credentials")), name


def test_every_azure_job_on_the_cluster_installs_a_pinned_kubelogin_before_the_credentials():
    jobs = deployment_jobs() | deployment_jobs(rollback=True)
    assert sorted(jobs) == sorted(CLUSTER_JOBS)
    for name, job in jobs.items():
        steps = deployment_steps(job)
        install = index_of(steps, installs_kubelogin)
        assert_pinned(steps[install]["env"], name)
        assert install < index_of(steps, runs("aks-credentials")), name


# Tool installers that ask GitHub's REST API for a release with no token: 60 requests an hour
# per address, shared by every job of a hosted pool, and a refusal reads as a missing version.
ASKS_GITHUB_API = {
    "KubeloginInstaller@": 'asks api.github.com for the release ("version ... was not found")',
    "azure/use-kubelogin@": "asks api.github.com for 'latest'; checks the zip only against its "
    "release's own .sha256",
}
DOWNLOAD = re.compile(r"\b(curl|wget)\b")
CHECKED = re.compile(r"\bsha256sum (--check|-c)\b")
SCRIPT_KEYS = ("run", "bash", "script", "inlineScript")


def steps_in(node: object):
    """Every step written in a YAML document, templates' conditional branches included."""
    if isinstance(node, dict):
        if any(key in node for key in ("uses", "task", *SCRIPT_KEYS)):
            yield node
        for value in node.values():
            yield from steps_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from steps_in(item)


def every_step():
    for path in sorted([*GITHUB.rglob("*.yml"), *AZURE.rglob("*.yml")]):
        for step in steps_in(yaml.safe_load(path.read_text())):
            yield path.name, step


def test_no_tool_is_installed_by_asking_githubs_api():
    for path, step in every_step():
        used = str(step.get("uses") or step.get("task") or "")
        for installer, why in ASKS_GITHUB_API.items():
            assert not used.startswith(installer), f"{path}: {used} {why}"


def test_every_download_is_checked_against_a_pinned_sha256():
    scripts = [
        (path, str(step[key])) for path, step in every_step() for key in SCRIPT_KEYS if key in step
    ]
    downloads = [(path, script) for path, script in scripts if DOWNLOAD.search(script)]
    assert downloads, "kubelogin's, at least"
    for path, script in downloads:
        assert CHECKED.search(script), f"{path}: a download without a sha256 check: {script}"


def test_the_environments_are_the_ones_setup_makes_and_staging_comes_first():
    """staging has no reviewers; production's are the gate, for a release and a rollback."""
    jobs = github_jobs(RELEASE)
    assert {name: jobs[name]["environment"] for name in CLUSTER_JOBS} == {
        "staging": STAGING,
        "production": ENVIRONMENT,
        "rollback": ENVIRONMENT,
    }
    assert "staging" in jobs["production"]["needs"]
    azure = deployment_jobs() | deployment_jobs(rollback=True)
    assert {name: job["environment"] for name, job in azure.items()} == {
        "staging": STAGING,
        "production": ENVIRONMENT,
        "rollback": ENVIRONMENT,
    }
    stages = {s["stage"]: s for s in pipeline("release.yml")["stages"]}
    assert "Staging" in stages["Production"]["dependsOn"]


def test_azure_login_is_the_last_thing_before_the_steps_that_use_it():
    """Its federated assertion is short-lived: installs go before it, never after."""
    jobs = reached_jobs("ci.yml") | release_jobs()
    assert {"build", "resolve", *CLUSTER_JOBS} <= set(jobs)
    for name, steps in jobs.items():
        if not any(uses("azure/login")(step) for step in steps):
            continue
        login = index_of(steps, uses("azure/login"))
        first_step = index_of(steps, lambda step: STEP_COMMAND.search(step.get("run", "")))
        between = steps[login + 1 : first_step]
        assert all("uses" not in s and "pip install" not in s.get("run", "") for s in between)
        assert index_of(steps, lambda s: "pip install" in s.get("run", "")) < login, name


def test_every_release_step_signs_in_as_its_jobs_azure_login_does():
    """The steps mint their own assertions (a canary outlasts GitHub's), as the identity the
    job's azure/login uses: the CI's to resolve, the deploy identity's on the cluster."""
    for deploy in ("", "deploy"):
        inputs = {"azure-client-id": "ci", "azure-deploy-client-id": deploy, "azure-tenant-id": "t"}
        scope = Scope({"inputs": inputs})
        for name, job in github_jobs(RELEASE).items():
            wanted = (deploy or "ci") if name in CLUSTER_JOBS else "ci"
            assert scope.text(job["env"]["AZURE_CLIENT_ID"]) == wanted, name
            assert scope.text(job["env"]["AZURE_TENANT_ID"]) == "t", name


def test_the_ci_build_signs_in_per_step_with_fresh_assertions_not_one_login():
    """GitHub's assertion lives minutes and an Azure CLI login made with it cannot be refreshed:
    the build (fetch, build, evaluate, then push and sign, asking for new audiences) gives each
    step the identity to mint its own assertions (clients/azure.py), and has no azure/login
    whose expired assertion a later step would lean on."""
    job = github_jobs("reusable-ci.yml")["build"]
    assert job["permissions"]["id-token"] == "write"
    assert job["env"]["AZURE_CLIENT_ID"] == "${{ inputs.azure-client-id }}"
    assert job["env"]["AZURE_TENANT_ID"] == "${{ inputs.azure-tenant-id }}"
    assert not any(uses("azure/login")(step) for step in job["steps"])


def test_every_install_in_both_systems_is_from_a_hash_lock():
    """Two runs install the same bytes: each pip install in a workflow, action or template is
    a hash lock of requirements/ (the steps', or audit.yml's pip-audit), or aiship itself
    with nothing more (--no-deps); both systems' setup install both."""
    files = [*GITHUB.parent.glob("actions/*/action.yml"), *GITHUB.glob("*.yml")]
    files += [*AZURE.glob("*.yml"), *AZURE.glob("templates/*.yml")]
    installs = {}
    for path in files:
        lines = [line.strip() for line in path.read_text().splitlines()]
        installs[path.relative_to(AZURE.parent)] = [
            line for line in lines if "pip install" in line and not line.startswith("#")
        ]
    for path, lines in installs.items():
        for line in lines:
            locked = re.search(r"--require-hashes -r \S*requirements/\w+\.txt", line)
            assert locked or "--no-deps" in line, f"{path}: {line}"
    for setup in (".github/actions/setup/action.yml", ".azure-pipelines/templates/setup.yml"):
        said = " ".join(installs[Path(setup)])
        assert "--require-hashes -r" in said and "--no-deps --no-build-isolation" in said, setup


def test_only_jobs_that_sign_in_to_azure_may_ask_for_an_oidc_token():
    """Least privilege, job by job: read the repository; an OIDC token only for azure/login;
    the caller grants the called workflow no more than its jobs ask for."""
    wanted = {"contents": "read", "id-token": "write"}
    signs_in = (uses("azure/login"), lambda step: step.get("uses", "").endswith("/cluster-login"))
    for name, job in github_jobs(RELEASE).items():
        assert any(way(step) for step in job["steps"] for way in signs_in), name
        assert job["permissions"] == wanted, name
    assert github_jobs("release.yml")["release"]["permissions"] == wanted
    for workflow in ("release.yml", RELEASE, "ci.yml", "reusable-ci.yml"):
        assert yaml.safe_load((GITHUB / workflow).read_text())["permissions"] == {
            "contents": "read"
        }


def test_the_release_deploys_with_its_own_identity_when_there_is_one():
    identities = {"AZURE_CLIENT_ID": "ci"}
    for deploy in ("", "deploy"):
        jobs = release_jobs({**identities, "AZURE_DEPLOY_CLIENT_ID": deploy})
        for name, steps in jobs.items():
            login = next(s for s in steps if uses("azure/login")(s))
            wanted = (deploy or "ci") if name in CLUSTER_JOBS else "ci"
            assert given(login, "client-id") == wanted, name
    connections = {"serviceConnection": "ci", "deployServiceConnection": "deploy"}
    for rollback in (False, True):
        for stage in pipeline("release.yml", rollback=rollback, **connections)["stages"]:
            for job in stage["jobs"]:
                steps = job_steps(job)
                used = {
                    s["inputs"]["azureSubscription"]
                    for s in steps
                    if "AzureCLI" in s.get("task", "")
                }
                assert used == ({"deploy"} if "deployment" in job else {"ci"}), stage["stage"]


def job_steps(job: dict) -> list[dict]:
    return deployment_steps(job) if "deployment" in job else job["steps"]


def test_every_azure_job_on_the_cluster_signs_in_as_the_deploy_identity_by_default():
    """A scheduled run passes no parameters, and only the deploy identity has the cluster's
    roles: with the defaults (of the pipeline, and of the template another project calls), each
    job that gets the cluster's credentials uses the deploy connection `setup` permits and
    guards, in every Azure step."""
    template = load("stages:\n  - template: templates/release-stages.yml\n")
    for rollback in (False, True):
        template["stages"][0]["parameters"] = {"rollback": rollback}
        for document in (pipeline("release.yml", rollback=rollback), expand(template, {})):
            jobs = [job for stage in document["stages"] for job in stage["jobs"]]
            on_cluster = [job for job in jobs if any(map(runs("aks-credentials"), job_steps(job)))]
            assert on_cluster, rollback
            for job in on_cluster:
                used = {
                    step["inputs"]["azureSubscription"]
                    for step in job_steps(job)
                    if "AzureCLI" in step.get("task", "")
                }
                assert used == {DEPLOY_SERVICE_CONNECTION}, job.get("deployment") or job["job"]


def test_the_release_yaml_writes_no_summary_of_its_own():
    """deploy, release-summary and rollback write theirs through aiship.support.outputs."""
    for workflow in ("release.yml", RELEASE):
        assert "GITHUB_STEP_SUMMARY" not in (GITHUB / workflow).read_text()
    assert "uploadsummary" not in "".join(p.read_text() for p in AZURE.rglob("*.yml"))


@pytest.mark.parametrize("system", ["github", "azure"])
def test_production_is_a_canary_and_every_deploy_reads_and_writes_records_in_the_registry(system):
    if system == "github":
        scripts = [
            command_line(s)
            for steps in reached_jobs("release.yml").values()
            for s in steps
            if runs("deploy")(s)
        ]
    else:
        scripts = [
            command_line({"run": s["inputs"]["inlineScript"], "env": s["env"]})
            for job in deployment_jobs().values()
            for s in deployment_steps(job)
            if runs("deploy")(s)
        ]
    staging, production = scripts
    assert "--overlay staging --environment staging" in staging
    assert "--smoke-test true" in staging.replace("True", "true")
    assert "--overlay production --environment production --strategy canary" in production
    for script in (staging, production):  # the records' registry: tests/pipelines/test_contract
        assert "--skip-staging-check" not in script


def test_the_test_job_builds_on_the_real_base_image_with_go_and_a_cache():
    """Hosted runners run jobs as a non-root user: debootstrap (root only) cannot make the base
    image there, but they can pull the real one. The control plane needs Go 1.26 and a cache."""
    job = github_jobs("ci.yml")["test"]
    assert job["env"]["BASE_IMAGE"] == "python:3.11-slim"
    go = next(s for s in job["steps"] if uses("actions/setup-go")(s))
    assert go["with"]["go-version"] == "1.26"
    cache = next(s for s in job["steps"] if uses("actions/cache")(s))
    assert cache["with"]["path"] == "~/.cache/aiship" and "tools/**/go.sum" in cache["with"]["key"]

    azure_test = pipeline("ci.yml")["stages"][0]["jobs"][0]
    assert azure_test["variables"]["BASE_IMAGE"] == "python:3.11-slim"
    tasks = {step.get("task"): step for step in azure_test["steps"]}
    assert tasks["GoTool@0"]["inputs"]["version"] == "1.26"
    assert "src/aiship/tools/kube/kubernetes/go.sum" in tasks["Cache@2"]["inputs"]["key"]
    assert tasks["Cache@2"]["inputs"]["path"] == "$(Pipeline.Workspace)/.cache/aiship"
    assert azure_test["variables"]["XDG_CACHE_HOME"] == "$(Pipeline.Workspace)/.cache"


# Hosted runners and agents run jobs as a non-root user with passwordless sudo (GitHub's
# `runner`, Azure's `vsts`); the local cluster's real node needs root. PATH keeps the Python and
# Go the job installed (sudo's secure_path would drop them), -E the cache's location.
AS_ROOT = re.compile(r'^sudo -E env "PATH=\$PATH" \./dev test(\s|$)')


def test_the_test_job_runs_the_suite_as_root_in_both_systems():
    github = [
        s["run"] for s in github_jobs("ci.yml")["test"]["steps"] if "./dev" in s.get("run", "")
    ]
    test_stage = next(s for s in pipeline("ci.yml")["stages"] if s["stage"] == "Test")
    azure = [
        s["script"]
        for job in test_stage["jobs"]
        for s in job["steps"]
        if "./dev" in s.get("script", "")
    ]
    assert len(github) == len(azure) == 1
    for script in github + azure:
        assert AS_ROOT.match(script.strip()), script


def test_releases_run_one_at_a_time_in_both_systems():
    assert yaml.safe_load((GITHUB / "release.yml").read_text())["concurrency"] == {
        "group": "release",
        "cancel-in-progress": False,
    }
    assert load((AZURE / "release.yml").read_text())["lockBehavior"] == "runLatest"


def test_the_setup_builds_notation_and_nothing_else_it_pins():
    """`aiship local tools` alone builds the local Kubernetes too (a quarter of an hour cold):
    a CI job asks for the signing tool by name."""
    setup = [GITHUB.parent / "actions" / "setup" / "action.yml", AZURE / "templates" / "setup.yml"]
    for path in setup:
        builds = re.findall(r"aiship local tools(.*)", path.read_text())
        assert [words.split() for words in builds] == [["notation"]], path
