"""Our composite actions as another repository meets them: every input documented with its type
and mapped onto the flag of the same name of a step the action runs, every output documented,
and no input ever written into a script (inputs reach the steps through `env:`)."""

from __future__ import annotations

import re

import pytest
import yaml

from aiship.cli import build_parser
from tests.pipelines.ci_systems import STEP_COMMAND
from tests.pipelines.test_pipelines import GITHUB

ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
TYPE = re.compile(r"\((string|path|boolean)\)")
FLAG = re.compile(r"^(--[a-z0-9-]+)")
HANDED = re.compile(r"^([\w-]+/[\w-]+)'s ([\w-]+)")  # "azure/login's client-id": for that action
ENV = re.compile(r"^\$([A-Z0-9_]+):")  # "$KUBELOGIN_VERSION: ...": that variable of a script step


def action(path) -> dict:
    return yaml.safe_load(path.read_text())


def flags_of(command: str) -> set[str]:
    """Every flag the steps command line takes for COMMAND."""
    parser = build_parser()
    (choices,) = (a for a in parser._actions if a.choices and command in a.choices)
    return {flag for a in choices.choices[command]._actions for flag in a.option_strings}


def test_there_is_an_action_for_each_capability():
    assert [path.parent.name for path in ACTIONS] == [
        "abort",
        "build-push-verify",
        "cluster-login",
        "deploy",
        "fetch-model",
        "release-summary",
        "resolve-image",
        "rollback",
        "setup",
    ]


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: p.parent.name)
def test_every_input_and_output_is_documented_with_its_type(path):
    document = action(path)
    assert document["runs"]["using"] == "composite" and document["description"]
    for name, spec in document["inputs"].items():
        assert TYPE.search(spec["description"]), f"{name}: say its type"
        assert spec.get("required") or "default" in spec, f"{name}: required, or a default"
    for name, spec in (document.get("outputs") or {}).items():
        assert spec["description"] and spec["value"].startswith("${{ steps."), name


@pytest.mark.parametrize(
    "path", [p for p in ACTIONS if p.parent.name != "setup"], ids=lambda p: p.parent.name
)
def test_every_input_is_the_flag_it_names_on_a_step_the_action_runs(path):
    document = action(path)
    scripts = [step.get("run", "") for step in document["runs"]["steps"]]
    commands = [command for script in scripts for command in STEP_COMMAND.findall(script)]
    flags = set().union(*(flags_of(command) for command in commands))
    for name, spec in document["inputs"].items():
        passed = [s for s in document["runs"]["steps"] if f"inputs.{name} }}" in str(s)]
        assert passed, f"{name} is never passed to a step"
        variable = ENV.match(spec["description"])
        if variable:
            expression = f"${{{{ inputs.{name} }}}}"
            assert any(
                (s.get("env") or {}).get(variable.group(1)) == expression and "run" in s
                for s in passed
            ), f"{name}: not the {variable.group(1)} of a script step"
            continue
        handed = HANDED.match(spec["description"])
        if handed:  # an input of an action this one runs, under that input's own name
            action_name, its_input = handed.groups()
            assert any(
                s.get("uses", "").startswith(f"{action_name}@")
                and f"inputs.{name} }}" in str(s.get("with"))
                and its_input in (s.get("with") or {})
                for s in passed
            ), f"{name}: not handed to {action_name} as {its_input}"
            continue
        flag = FLAG.match(spec["description"])
        assert flag, f"{name}: its description starts with the flag it sets, or the action's input"
        assert flag.group(1) in flags, f"{name}: {flag.group(1)} is not a flag of {commands}"


def workflow_and_action_steps():
    for path in [*GITHUB.glob("workflows/*.yml"), *ACTIONS]:
        document = yaml.safe_load(path.read_text())
        jobs = document.get("jobs") or {"runs": document.get("runs", {})}
        for job in jobs.values():
            for step in job.get("steps", []):
                yield path, step


def test_no_expression_is_ever_written_into_a_script():
    """GitHub substitutes `${{ }}` into a script before the shell reads it: a value holding
    `$(...)` or a quote would become code. Values go through `env:` instead."""
    scripts = [(path, step["run"]) for path, step in workflow_and_action_steps() if "run" in step]
    assert len(scripts) > 10
    for path, script in scripts:
        assert "${{" not in script, f"{path}: {script}"
