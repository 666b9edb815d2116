"""Both CI systems' pipelines: linted, schema-valid, running the same steps in the same order."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.pipelines.azure_yaml import expand, load, runs
from tests.pipelines.azure_yaml import pipeline as pipeline_document
from tests.pipelines.ci_systems import STEP_COMMAND, github_steps
from tests.repo import REPO_ROOT

GITHUB = REPO_ROOT / ".github"


def tool(name: str) -> str:
    """A linter installed by ./dev setup (PATH, or the cache folder it installs Go tools to)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiship" / "tools"
    found = shutil.which(name) or next((str(p) for p in cache.glob(f"*/{name}")), None)
    assert found, f"{name} is not installed: run ./dev setup"
    return found


def test_github_workflows_pass_actionlint():
    result = subprocess.run(
        [tool("actionlint"), "-no-color", *sorted((GITHUB / "workflows").glob("*.yml"))],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflows_and_actions_pass_zizmor():
    """Workflows and actions alike (zizmor finds both under .github, and its settings there)."""
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--format", "json", str(GITHUB)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_every_action_is_pinned_by_commit_with_its_version():
    """Others' actions by commit; ours by path, from the same commit as the file that uses them."""
    files = [*GITHUB.glob("workflows/*.yml"), *GITHUB.glob("actions/*/action.yml")]
    pattern = re.compile(r"^\s*(?:-\s+)?uses: (\S+)(.*)$", re.MULTILINE)
    uses = pattern.findall("".join(p.read_text() for p in files))
    assert uses
    for action, comment in uses:
        if action.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.search(r"# v\d", comment), f"{action} has no version comment"


def azure_schema() -> dict:
    vendor = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    return json.loads((vendor / "azure-pipelines.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("pipeline", ["ci.yml", "release.yml"])
def test_azure_pipelines_match_the_official_schema(pipeline):
    errors = jsonschema.Draft7Validator(azure_schema()).iter_errors(pipeline_document(pipeline))
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_the_schema_check_catches_a_misspelt_key():
    document = expand(load("trigger: none\nstages:\n  - stage: A\n    jobz: []\n"), {})
    assert list(jsonschema.Draft7Validator(azure_schema()).iter_errors(document))


def github_commands(
    workflow: str, status: str = "success", fails_at: str | None = None, **inputs: str
) -> list[str]:
    """The steps commands of a workflow's jobs that run, in `needs` order, actions entered; with
    FAILS_AT, each job failed or was cancelled (STATUS) at the step whose script holds it."""
    reached = github_steps(workflow, status, fails_at, **inputs)
    return [m for r in reached for m in STEP_COMMAND.findall(str(r.step.get("run", "")))]


def azure_steps(
    pipeline: str, status: str = "succeeded", fails_at: str | None = None, **parameters: object
) -> list[dict]:
    """The steps of a pipeline's jobs that run, templates expanded, in stage order; with
    FAILS_AT, each job failed or was canceled (STATUS) at the step whose script holds it."""
    reached = []
    for stage in pipeline_document(pipeline, **parameters)["stages"]:
        for job in stage["jobs"]:
            now = "succeeded"
            for step in job.get("steps") or job["strategy"]["runOnce"]["deploy"]["steps"]:
                if runs(step, now):
                    reached.append(step)
                    if fails_at and fails_at in script_of(step):
                        now = status
    return reached


def script_of(step: dict) -> str:
    return str(step.get("script") or (step.get("inputs") or {}).get("inlineScript") or "")


def azure_commands(
    pipeline: str, status: str = "succeeded", fails_at: str | None = None, **parameters: object
) -> list[str]:
    """The `python -m aiship` commands of a pipeline's steps that run (see azure_steps)."""
    steps = azure_steps(pipeline, status, fails_at, **parameters)
    return [m for step in steps for m in STEP_COMMAND.findall(script_of(step))]


@pytest.mark.parametrize("pipeline", ["ci.yml", "release.yml"])
def test_github_and_azure_run_the_same_steps_in_the_same_order(pipeline):
    github, azure = github_commands(pipeline), azure_commands(pipeline)
    assert github == azure
    assert len(github) >= 3


def test_ci_builds_then_pushes_then_verifies():
    assert github_commands("ci.yml") == [
        "fetch-model",
        "build-image",
        "push-image",
        "verify-push",
        "evaluate-model",
        "attest-image",
        "promote-image",
    ]


def test_the_release_goes_through_staging_and_its_summary_before_production():
    release = ["resolve-image", "verify-image", "aks-credentials", "deploy", "release-summary"]
    release += ["aks-credentials", "deploy"]
    assert github_commands("release.yml") == azure_commands("release.yml") == release
    assert github_commands("release.yml", rollback="false") == release


def test_a_rollback_run_only_rolls_back_in_both_systems():
    rollback = ["aks-credentials", "rollback"]
    assert github_commands("release.yml", rollback="true") == rollback
    assert azure_commands("release.yml", rollback=True) == rollback


def test_the_azure_rollback_path_matches_the_official_schema_too():
    document = pipeline_document("release.yml", rollback=True)
    errors = jsonschema.Draft7Validator(azure_schema()).iter_errors(document)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_the_compile_model_inserts_the_first_branch_that_holds():
    text = """
parameters:
  - name: kind
    default: a
  - name: flag
    type: boolean
    default: false
stages:
  - ${{ if eq(parameters.kind, 'a') }}:
      - stage: A
  - ${{ elseif parameters.flag }}:
      - stage: B
  - ${{ else }}:
      - stage: C
  - stage: D
"""

    def stages(**parameters: object) -> list[str]:
        return [stage["stage"] for stage in expand(load(text), parameters)["stages"]]

    assert stages() == ["A", "D"]  # the defaults
    assert stages(kind="A", flag=True) == ["A", "D"]  # eq ignores case; the first branch wins
    assert stages(kind="b", flag=True) == ["B", "D"]
    assert stages(kind="b") == ["C", "D"]


def commented_example(path: Path, first: str) -> object:
    """The YAML example commented out in PATH, from the line `#   FIRST` to the last `#   ` line
    after it, loaded as Azure loads YAML."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"#   {first}"))
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    return load("\n".join(block))


def test_the_manual_validation_fallback_names_its_approvers_and_gates_production():
    """Left at its defaults, ManualValidation lets anyone notified approve, the one who queued
    the run included, and a job that does not depend on it runs beside it, ungated."""
    approve, production = commented_example(REPO_ROOT / ".azure-pipelines/release.yml", "- job:")
    (task,) = approve["steps"]
    assert task["task"] == "ManualValidation@1"
    assert task["inputs"]["approvers"].strip()
    assert task["inputs"]["allowApproversToApproveTheirOwnRuns"] == "false"
    assert task["inputs"]["onTimeout"] == "reject"
    assert production["dependsOn"] == approve["job"]

    # In place in the release, as the comment says, it compiles to a valid pipeline.
    document = pipeline_document("release.yml")
    stage = next(stage for stage in document["stages"] if stage["stage"] == "Production")
    (job,) = (job for job in stage["jobs"] if job.get("deployment") == production["deployment"])
    # The schema types a task's boolean inputs as YAML booleans (its other scalars as strings).
    typed = {k: {"true": True, "false": False}.get(v, v) for k, v in task["inputs"].items()}
    approve["steps"] = [{**task, "inputs": typed}]
    stage["jobs"] = [approve, {**job, **production}]
    errors = jsonschema.Draft7Validator(azure_schema()).iter_errors(document)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


# Where another project is told how to use our templates: comments of the templates, the docs.
USAGE = sorted(
    p.relative_to(REPO_ROOT).as_posix()
    for p in [
        REPO_ROOT / "README.md",
        *(REPO_ROOT / "docs").glob("*.md"),
        *(REPO_ROOT / ".azure-pipelines").rglob("*.yml"),
    ]
)
TEMPLATE_AT = re.compile(r"([\w./-]+\.ya?ml)@aiship\b")
FLOW_MAPPING = re.compile(r"\{[^{}]*\}")


def github_repositories(text: str) -> list[str]:
    """The `type: github` repository resources of TEXT, each as written: one-line flow
    mappings (in comments) and the entries of its YAML code blocks."""
    found = [m for m in FLOW_MAPPING.findall(text) if re.search(r"\btype: github\b", m)]
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        document = load(block)
        resources = document.get("resources") if isinstance(document, dict) else None
        for entry in (resources or {}).get("repositories", []):
            if entry.get("type") == "github":
                found.append(json.dumps(entry))
    return found


@pytest.mark.parametrize("path", USAGE)
def test_every_template_another_project_is_told_to_use_exists(path):
    """`template: PATH@aiship` is PATH from the root of our repository, and a `type: github`
    repository resource needs the `endpoint` (a GitHub service connection) to be fetched."""
    text = (REPO_ROOT / path).read_text()
    for template in TEMPLATE_AT.findall(text):
        assert (REPO_ROOT / template).is_file(), f"{path}: {template}@aiship does not exist"
    for repository in github_repositories(text):
        assert "endpoint" in repository, f"{path}: {repository} has no endpoint"


@pytest.mark.parametrize(("github", "azure"), [("cancelled", "canceled"), ("failure", "failed")])
def test_a_cancelled_or_failed_deploy_is_followed_by_its_clean_up_in_both_systems(github, azure):
    # Each deploy job's clean-up runs then (and nothing else does), against its deploy's target.
    cut = "aiship deploy "
    release = ["resolve-image", "verify-image", "aks-credentials", "deploy", "abort"]
    release += ["aks-credentials", "deploy", "abort"]
    assert github_commands("release.yml", github, cut) == release
    assert azure_commands("release.yml", azure, cut) == release
    places = ("KUBECONFIG_FILE", "NAMESPACE")
    github_reached = [r.step | {"env": r.env} for r in github_steps("release.yml", github, cut)]
    azure_reached = azure_steps("release.yml", azure, cut)
    for reached, script in (
        (github_reached, lambda s: str(s.get("run", ""))),
        (azure_reached, script_of),
    ):
        deploys = [s for s in reached if "aiship deploy " in script(s)]
        aborts = [s for s in reached if "aiship abort " in script(s)]
        assert [[s["env"][k] for k in places] for s in aborts] == [
            [s["env"][k] for k in places] for s in deploys
        ]
        # The deploy replaces its shell (`exec`), so the runner's SIGINT or SIGTERM reaches
        # aiship, which removes its canary before the SIGKILL the clean-up step is there for.
        assert all(script(s).strip().startswith("exec aiship deploy ") for s in deploys)


def test_no_clean_up_runs_in_a_release_that_succeeded():
    assert "abort" not in github_commands("release.yml") + azure_commands("release.yml")
