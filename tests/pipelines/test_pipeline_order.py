"""The local pipeline runs the steps of the CI and release workflows, in the same order."""

from __future__ import annotations

import re

import pytest
import yaml

from steps.local.pipeline import stages, step_commands
from steps.support.paths import REPO_ROOT

STEP_COMMAND = re.compile(r"python -m steps ([a-z][a-z-]*)")


def workflow_commands() -> list[str]:
    """The run: scripts of CI then release, jobs in file order (which is their `needs` order);
    AKS credentials have no local counterpart."""
    workflows = REPO_ROOT / ".github" / "workflows"
    scripts = [
        step.get("run", "")
        for name in ("ci.yml", "release.yml")
        for job in yaml.safe_load((workflows / name).read_text())["jobs"].values()
        for step in job["steps"]
    ]
    return [
        command
        for script in scripts
        for command in STEP_COMMAND.findall(script)
        if command != "aks-credentials"
    ]


@pytest.mark.parametrize("target", ["swarm", "kubernetes"])
def test_the_local_pipeline_runs_the_workflow_steps_in_order(target):
    assert step_commands(target) == workflow_commands()


def test_the_approval_gate_comes_before_the_deploy_and_after_everything_pushed():
    names = [step.name for stage in stages() for step in stage.steps]
    assert names.index("promote-image") < names.index("approve") < names.index("deploy")
    assert [stage.name for stage in stages()] == ["stand-ins", "ci", "release"]
