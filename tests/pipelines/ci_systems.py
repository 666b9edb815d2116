"""The two CI systems as far as our steps meet them: how each one substitutes expressions, which
environment it gives a step, and how step outputs flow on. Used by test_contract.py to run every
step command of both pipelines with --dry-run, in the environment that system would give it.

What is modelled, from each system's own documentation:
- GitHub Actions: `${{ }}` expressions are replaced before the shell sees the script (vars,
  steps.<id>.outputs, needs.<job>.outputs, inputs, github); `env:` of workflow, job and step
  merge in that order; the runner sets GITHUB_ACTIONS, GITHUB_SHA, GITHUB_REF_NAME, RUNNER_TEMP.
  A job runs when its `if:` holds (the forms our workflows use) and every job it needs ran.
- Azure Pipelines: template parameters at compile time (azure_yaml.py); `$(name)` macros replaced
  before the task runs, an undefined one left as it is; every non-secret variable also becomes an
  environment variable (upper case, '.' as '_'); output variables of earlier steps are
  `$(step.name)`; `$[ stageDependencies.S.J.outputs['step.name'] ]` at runtime; AzureCLI@2
  signs az in and exports AZURESUBSCRIPTION_{SERVICE_CONNECTION_ID,CLIENT_ID,TENANT_ID} (its task
  source), not a subscription id.
Step outputs travel as in the real systems: written by steps.support.outputs, read back the way
each agent reads them (through_the_bridge), so the bridge and the expressions that read its
outputs (`steps.X.outputs.Y`, `$[ stageDependencies... ]`) are tested together.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from steps.support.outputs import publish
from steps.support.paths import REPO_ROOT
from tests.pipelines.azure_yaml import pipeline as azure_pipeline

GITHUB = REPO_ROOT / ".github" / "workflows"
STEP_COMMAND = re.compile(r"python -m steps ([a-z][a-z-]*)")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")
RUNTIME = re.compile(r"^\$\[\s*stageDependencies\.(\w+)\.(\w+)\.outputs\['(\w+)\.(\w+)'\]\s*\]$")
SET_OUTPUT = re.compile(r"^##vso\[task\.setvariable variable=([^;\]]+);isOutput=true\](.*)$")
REVISION = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class StepRun:
    """One step command as the CI system ran it (with --dry-run)."""

    system: str
    where: str  # workflow/job/step
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def plan(self) -> str:
        return json.loads(self.stdout.strip().splitlines()[-1])["plan"] if self.ok else ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_script(script: str, env: Mapping[str, str], workdir: Path) -> subprocess.CompletedProcess:
    """A step's script under bash, as both systems run it, with --dry-run --json added."""
    python = Path(sys.executable).parent
    environment = {
        "PATH": f"{python}:{os.environ['PATH']}",  # `python` is the one with the steps installed
        "HOME": str(workdir),
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    return subprocess.run(
        ["bash", "-e", "-c", f"{script.strip()} --dry-run --json"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def through_the_bridge(values: Mapping[str, object], system: str, workdir: Path) -> dict[str, str]:
    """The outputs as the CI system's agent reads them from what steps.support.outputs wrote:
    GitHub's runner reads $GITHUB_OUTPUT (NAME=VALUE, or NAME<<DELIMITER ... DELIMITER); Azure's
    agent reads `##vso[task.setvariable variable=NAME;isOutput=true]VALUE` lines on stdout."""
    if system == "github":
        path = workdir / "github_output"
        path.unlink(missing_ok=True)
        publish(values, {"GITHUB_OUTPUT": str(path)})
        return _github_outputs(path.read_text())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        publish(values, {"TF_BUILD": "True"})
    return {
        match.group(1): match.group(2)
        for line in printed.getvalue().splitlines()
        if (match := SET_OUTPUT.match(line))
    }


def _github_outputs(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values


# GitHub Actions


@dataclass
class GitHubRun:
    """Runs the `python -m steps` steps of one workflow with the given repository variables."""

    workflow: str
    variables: Mapping[str, str]
    outputs_of: Callable[[str], Mapping[str, object]]  # command -> its outputs
    workdir: Path
    inputs: Mapping[str, str] = field(default_factory=dict)
    step_outputs: dict[str, dict[str, object]] = field(default_factory=dict)
    job_outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def runs(self) -> Iterator[StepRun]:
        document = yaml.safe_load((GITHUB / self.workflow).read_text())
        for job_name, job in github_jobs(self.workflow, self.inputs):
            self.step_outputs = {}
            for index, step in enumerate(job["steps"]):
                script = step.get("run", "")
                found = STEP_COMMAND.search(script)
                if not found:
                    continue
                env = {
                    **self.runner_env(),
                    **self.evaluated(document.get("env") or {}),
                    **self.evaluated(job.get("env") or {}),
                    **self.evaluated(step.get("env") or {}),
                }
                done = run_script(self.substitute(script), env, self.workdir)
                where = f"{self.workflow}/{job_name}/{step.get('id', index)}"
                yield StepRun("github", where, found.group(1), *_result(done))
                if "id" in step:
                    self.step_outputs[step["id"]] = through_the_bridge(
                        self.outputs_of(found.group(1)), "github", self.workdir
                    )
            self.job_outputs[job_name] = self.evaluated(job.get("outputs") or {})

    def runner_env(self) -> dict[str, str]:
        return {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": REVISION,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_WORKSPACE": str(REPO_ROOT),
            "RUNNER_TEMP": str(self.workdir),
        }

    def evaluated(self, mapping: Mapping[str, object]) -> dict[str, str]:
        return {name: self.substitute(str(value)) for name, value in mapping.items()}

    def substitute(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.expression(m.group(1)), text)

    def expression(self, text: str) -> str:
        """The value of one `${{ }}` expression; the forms our workflows use, and `!env.ACT`."""
        parts = text.split(".")
        if parts[0] == "vars" and len(parts) == 2:
            return self.variables.get(parts[1], "")  # an unset variable is the empty string
        if parts[0] == "steps" and parts[2] == "outputs":
            return str(_output(self.step_outputs[parts[1]], parts[3], text))
        if parts[0] == "needs" and parts[2] == "outputs":
            return str(_output(self.job_outputs[parts[1]], parts[3], text))
        if parts[0] == "inputs":
            return self.inputs.get(parts[1], "")
        if text == "github.ref_name":
            return "main"
        raise AssertionError(f"{self.workflow}: no model of the expression ${{{{ {text} }}}}")


def needs_order(jobs: Mapping[str, dict]) -> list[str]:
    ordered: list[str] = []
    while len(ordered) < len(jobs):
        ready = [
            name
            for name, job in jobs.items()
            if name not in ordered and set(_as_list(job.get("needs"))) <= set(ordered)
        ]
        assert ready, "jobs wait on each other"
        ordered.extend(ready)
    return ordered


def github_jobs(
    workflow: str, inputs: Mapping[str, str] | None = None, event: str = "push"
) -> list[tuple[str, dict]]:
    """The jobs of a workflow that run, in `needs` order: their `if:` holds for these inputs and
    this event on main, and every job they need ran (GitHub skips a job whose needs were)."""
    jobs = yaml.safe_load((GITHUB / workflow).read_text())["jobs"]
    ran: list[str] = []
    for name in needs_order(jobs):
        job = jobs[name]
        needs_ran = set(_as_list(job.get("needs"))) <= set(ran)
        if needs_ran and job_condition(str(job.get("if", "true")), inputs or {}, event):
            ran.append(name)
    return [(name, jobs[name]) for name in ran]


def job_condition(text: str, inputs: Mapping[str, str], event: str) -> bool:
    """A job's `if:`, in the forms our workflows use: terms joined by `&&`, each `[!]inputs.X`
    (an input not given is empty, so false) or `github.event_name|ref == 'literal'`."""
    context = {"github.event_name": event, "github.ref": "refs/heads/main"}
    expression = EXPRESSION.fullmatch(text.strip())
    held = []
    for term in (expression.group(1) if expression else text).split("&&"):
        term = term.strip()
        negated = term.startswith("!")
        name = term.lstrip("!").strip()
        if name == "true":
            value = True
        elif name.startswith("inputs."):
            value = str(inputs.get(name.split(".", 1)[1], "")).lower() not in ("", "false")
        else:
            left, equals, literal = name.partition("==")
            assert equals and left.strip() in context, f"no model of the job condition {text!r}"
            value = context[left.strip()] == literal.strip().strip("'")
        held.append(value != negated)
    return all(held)


# Azure Pipelines


@dataclass
class AzureRun:
    """Runs the `python -m steps` steps of one pipeline with the given variable group."""

    pipeline: str
    group: Mapping[str, str]
    outputs_of: Callable[[str], Mapping[str, object]]
    workdir: Path
    parameters: Mapping[str, object] = field(default_factory=dict)
    stage_outputs: dict[tuple[str, str, str], dict[str, object]] = field(default_factory=dict)

    def runs(self) -> Iterator[StepRun]:
        document = azure_pipeline(self.pipeline, **self.parameters)
        for stage in document["stages"]:
            stage_variables = self.stage_variables(stage.get("variables") or {})
            for job in stage["jobs"]:
                job_name = job.get("job") or job.get("deployment")
                steps = job.get("steps") or job["strategy"]["runOnce"]["deploy"]["steps"]
                yield from self.job_runs(stage["stage"], job_name, steps, stage_variables)

    def job_runs(
        self, stage: str, job: str, steps: list[dict], stage_variables: Mapping[str, str]
    ) -> Iterator[StepRun]:
        variables = {**self.predefined(), **self.group, **stage_variables}
        outputs: dict[str, dict[str, object]] = {}
        for index, step in enumerate(steps):
            script = (step.get("inputs") or {}).get("inlineScript") or step.get("script") or ""
            found = STEP_COMMAND.search(script)
            if not found:
                continue
            assert step.get("task") == "AzureCLI@2", f"{self.pipeline}: steps run in AzureCLI@2"
            env = {
                **{_env_name(name): value for name, value in variables.items()},
                **{
                    _env_name(f"{name}.{key}"): str(value)
                    for name, values in outputs.items()
                    for key, value in values.items()
                },
                **self.task_env(),
                **{
                    name: self.macros(str(value), variables, outputs)
                    for name, value in (step.get("env") or {}).items()
                },
            }
            done = run_script(self.macros(script, variables, outputs), env, self.workdir)
            where = f"{self.pipeline}/{stage}/{job}/{step.get('name', index)}"
            yield StepRun("azure", where, found.group(1), *_result(done))
            if "name" in step:
                outputs[step["name"]] = through_the_bridge(
                    self.outputs_of(found.group(1)), "azure", self.workdir
                )
                self.stage_outputs[(stage, job, step["name"])] = outputs[step["name"]]

    def predefined(self) -> dict[str, str]:
        return {
            "Build.SourceVersion": REVISION,
            "Build.SourceBranch": "refs/heads/main",
            "Build.SourceBranchName": "main",
            "Agent.TempDirectory": str(self.workdir),
            "Common.TestResultsDirectory": str(self.workdir / "results"),
            "System.DefaultWorkingDirectory": str(REPO_ROOT),
            "TF_BUILD": "True",
        }

    def task_env(self) -> dict[str, str]:
        """What AzureCLI@2 adds for a workload-identity service connection."""
        return {
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "0b6a5c4e-1111-2222-3333-444455556666",
            "AZURESUBSCRIPTION_CLIENT_ID": "7c1d2e3f-1111-2222-3333-444455556666",
            "AZURESUBSCRIPTION_TENANT_ID": "8d2e3f4a-1111-2222-3333-444455556666",
        }

    def stage_variables(self, variables: Mapping[str, str] | list) -> dict[str, str]:
        if isinstance(variables, list):  # `- group: NAME` entries: the group is given already
            return {}
        values = {}
        for name, value in variables.items():
            runtime = RUNTIME.match(str(value).strip())
            if runtime:
                stage, job, step, key = runtime.groups()
                values[name] = str(_output(self.stage_outputs[(stage, job, step)], key, value))
            else:
                values[name] = str(value)
        return values

    @staticmethod
    def macros(text: str, variables: Mapping[str, str], outputs: Mapping[str, Mapping]) -> str:
        """`$(name)` and `$(step.name)` replaced; an undefined one stays as it is (Azure's rule)."""
        lowered = {name.lower(): value for name, value in variables.items()}

        def value(match: re.Match) -> str:
            name = match.group(1)
            step, _, key = name.partition(".")
            if key and step in outputs and key in outputs[step]:
                return str(outputs[step][key])
            return str(lowered.get(name.lower(), match.group(0)))

        return MACRO.sub(value, text)


def _env_name(variable: str) -> str:
    return variable.upper().replace(".", "_")


def _output(outputs: Mapping[str, object], key: str, expression: str) -> object:
    assert key in outputs, (
        f"{expression}: the step has no output {key!r} (it has {sorted(outputs)})"
    )
    return outputs[key]


def _result(done: subprocess.CompletedProcess) -> tuple[int, str, str]:
    return done.returncode, done.stdout, done.stderr


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value] if value else []
