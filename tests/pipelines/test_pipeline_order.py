"""The local pipeline runs the steps of the CI and release workflows, in the same order."""

from __future__ import annotations

from aiship.local.pipeline import stages, step_commands
from tests.pipelines.ci_systems import STEP_COMMAND, github_steps


def workflow_commands() -> list[str]:
    """The run: scripts of CI then release, the jobs a push and a nightly release run, in `needs`
    order, actions entered (a rollback run is another path); AKS credentials have no local
    counterpart."""
    scripts = [
        str(reached.step.get("run", ""))
        for name in ("ci.yml", "release.yml")
        for reached in github_steps(name)
    ]
    return [
        command
        for script in scripts
        for command in STEP_COMMAND.findall(script)
        if command != "aks-credentials"
    ]


def test_the_local_pipeline_runs_the_workflow_steps_in_order():
    """On Kubernetes: staging, its summary, the gate, the production canary, as in CI."""
    assert step_commands("kubernetes") == workflow_commands()


def test_on_a_swarm_the_steps_are_the_workflows_in_their_order_with_one_target():
    """A swarm has one target, so no staging: what runs is the workflow's steps, none added,
    none out of order."""
    remaining = iter(workflow_commands())
    assert all(command in remaining for command in step_commands("swarm"))
    assert step_commands("swarm")[-3:] == ["resolve-image", "verify-image", "deploy"]


def test_the_gate_comes_after_staging_and_its_summary_and_before_production():
    steps = [step for stage in stages("kubernetes") for step in stage.steps]
    names = [step.name for step in steps]
    gate = names.index("approve")
    before = [step.command for step in steps[:gate] if step.command]
    after = [step.command for step in steps[gate + 1 :] if step.command]
    assert before[-4:] == ["resolve-image", "verify-image", "deploy", "release-summary"]
    assert after == ["deploy"]
    assert names.index("promote-image") < gate
    assert [stage.name for stage in stages()] == ["stand-ins", "ci", "release"]


def test_on_a_swarm_the_gate_comes_before_the_deploy():
    names = [step.name for stage in stages("swarm") for step in stage.steps]
    commands = [step.command for stage in stages("swarm") for step in stage.steps]
    assert names.index("promote-image") < names.index("approve") < commands.index("deploy")
