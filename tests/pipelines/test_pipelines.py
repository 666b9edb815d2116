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
import yaml

from steps.support.paths import REPO_ROOT
from tests.pipelines.azure_yaml import expand, load
from tests.pipelines.azure_yaml import pipeline as pipeline_document
from tests.pipelines.ci_systems import needs_order

GITHUB = REPO_ROOT / ".github" / "workflows"
STEP_COMMAND = re.compile(r"python -m steps ([a-z][a-z-]*)")


def tool(name: str) -> str:
    """A linter installed by ./dev setup (PATH, or the cache folder it installs Go tools to)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aiship" / "tools"
    found = shutil.which(name) or next((str(p) for p in cache.glob(f"*/{name}")), None)
    assert found, f"{name} is not installed: run ./dev setup"
    return found


def test_github_workflows_pass_actionlint():
    result = subprocess.run(
        [tool("actionlint"), "-no-color", *sorted(GITHUB.glob("*.yml"))],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflows_pass_zizmor():
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
    uses = re.findall(r"uses: (\S+)(.*)", "".join(p.read_text() for p in GITHUB.glob("*.yml")))
    assert uses
    for action, comment in uses:
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


def github_commands(workflow: str) -> list[str]:
    """The `python -m steps` commands of a workflow, jobs in `needs` order."""
    jobs = yaml.safe_load((GITHUB / workflow).read_text())["jobs"]
    ordered = needs_order(jobs)
    scripts = [step.get("run", "") for name in ordered for step in jobs[name]["steps"]]
    return [m for script in scripts for m in STEP_COMMAND.findall(script)]


def azure_commands(pipeline: str) -> list[str]:
    """The `python -m steps` commands of a pipeline, templates expanded, in stage order."""
    scripts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            scripts.extend(str(node[key]) for key in ("script", "inlineScript") if key in node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(pipeline_document(pipeline)["stages"])
    return [m for script in scripts for m in STEP_COMMAND.findall(script)]


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
        "promote-image",
    ]
    assert github_commands("release.yml") == ["resolve-image", "aks-credentials", "deploy"]
