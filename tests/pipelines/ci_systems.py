"""The two CI systems as far as our steps meet them: how each one substitutes expressions, which
environment it gives a step, and how step outputs flow on. Used by test_contract.py to run every
step command of both pipelines with --dry-run, in the environment that system would give it.

What is modelled, from each system's own documentation:
- GitHub Actions (github_model.py): jobs, reusable workflows and composite actions as the runner
  reaches them, `${{ }}` expressions evaluated; `env:` of workflow, job and step merge in that
  order; the runner sets GITHUB_ACTIONS, GITHUB_SHA, GITHUB_REF_NAME, RUNNER_TEMP.
- Azure Pipelines: template parameters at compile time (azure_yaml.py); `$(name)` macros replaced
  before the task runs, an undefined one left as it is; every non-secret variable also becomes an
  environment variable (upper case, '.' as '_'); output variables of earlier steps are
  `$(step.name)`; `$[ stageDependencies.S.J.outputs['step.name'] ]` at runtime; AzureCLI@2
  signs az in and exports AZURESUBSCRIPTION_{SERVICE_CONNECTION_ID,CLIENT_ID,TENANT_ID} (its task
  source), not a subscription id.
Step outputs travel as in the real systems: written by aiship.support.outputs, read back the way
each agent reads them (through_the_bridge), so the bridge and the expressions that read its
outputs (`steps.X.outputs.Y`, `$[ stageDependencies... ]`) are tested together.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import trustme

from aiship.support.outputs import publish
from tests.pipelines.azure_yaml import pipeline as azure_pipeline
from tests.pipelines.azure_yaml import runs
from tests.pipelines.github_model import GitHubModel, Step
from tests.repo import REPO_ROOT

GITHUB = REPO_ROOT / ".github" / "workflows"
AISHIP = "OWNER/aiship"  # our repository, as the model names it (its owner is whoever forks it)
# A pipeline step's command; `local tools` only builds a tool the steps use (the setup action).
STEP_COMMAND = re.compile(r"(?:python -m aiship|aiship) (?!local tools)([a-z][a-z-]*)")
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


def run_script(
    script: str, env: Mapping[str, str], workdir: Path, cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess:
    """A step's script under bash, as both systems run it, with --dry-run --json added to its
    last line (the steps command)."""
    python = Path(sys.executable).parent
    environment = {
        "PATH": f"{python}:{os.environ['PATH']}",  # `python` and `aiship` with the steps installed
        "HOME": str(workdir),
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    return subprocess.run(
        ["bash", "-e", "-c", f"{script.strip()} --dry-run --json"],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def through_the_bridge(values: Mapping[str, object], system: str, workdir: Path) -> dict[str, str]:
    """The outputs as the CI system's agent reads them from what aiship.support.outputs wrote:
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


# What a job's checkout holds when the steps run: the repository's files, what the README's setup
# has the user commit, and what the job's earlier steps leave for the later ones.
CERTIFICATE = Path("signing", "certificate.pem")  # verify-image's --certificate, committed
FETCHED_MODEL = Path("build", "model")  # fetch-model's --dest, which build-image reads


def job_checkout(dest: Path, model: Path, source: Path | None = REPO_ROOT) -> Path:
    """DEST as the job sees it when a step runs: SOURCE's tracked files (None: DEST's own), the
    signing certificate committed, and MODEL where fetch-model places it. The steps' plans read
    these files, so a dry run of one step after another needs what the earlier ones leave."""
    if source is not None:
        tracked = subprocess.run(
            ["git", "ls-files", "-z"], cwd=source, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        for name in filter(None, tracked.split("\0")):
            if (source / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, dest / name)
    write_certificate(dest / CERTIFICATE)
    shutil.copytree(model, dest / FETCHED_MODEL, dirs_exist_ok=True)
    return dest


def write_certificate(path: Path) -> Path:
    """A PEM certificate at PATH, as the README has the user commit (verify-image's plan reads
    it; what it trusts is the real run's business)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


# GitHub Actions


def github_model(
    variables: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    workspace: Path = REPO_ROOT,
    repository: str = AISHIP,
) -> GitHubModel:
    """A run in the repository REPOSITORY checked out at WORKSPACE, on main, our own repository
    found in this checkout (as act's --local-repository maps it)."""
    return GitHubModel(
        workspace=workspace,
        repositories={AISHIP: REPO_ROOT},
        variables=variables or {},
        github={"sha": REVISION, "repository": repository, "event": {"repository": {}}},
        runner={"temp": str(workdir or workspace)},
    )


def github_steps(
    workflow: str | Path, status: str = "success", fails_at: str | None = None, **inputs: object
) -> list[Step]:
    """Every step of a workflow's jobs that run, as GitHub reaches them (actions entered); with
    FAILS_AT, each job gets STATUS (failure, cancelled) at the step whose script holds it."""
    model = replace(github_model(), status=status, fails_at=fails_at)
    return list(model.steps(GITHUB / workflow, inputs))


@dataclass
class GitHubRun:
    """Runs the steps commands of one workflow with the given repository variables."""

    workflow: str | Path  # a file of .github/workflows, or a path
    variables: Mapping[str, str]
    outputs_of: Callable[[str], Mapping[str, object]]  # command -> its outputs
    workdir: Path
    inputs: Mapping[str, str] = field(default_factory=dict)
    workspace: Path = REPO_ROOT
    repository: str = AISHIP

    def runs(self) -> Iterator[StepRun]:
        model = github_model(self.variables, self.workdir, self.workspace, self.repository)
        for reached in model.steps(GITHUB / self.workflow, self.inputs):
            script = str(reached.step.get("run", ""))
            found = STEP_COMMAND.search(script)
            if not found:
                continue
            env = {**self.runner_env(), **reached.env}
            done = run_script(reached.scope.text(script), env, self.workdir, self.workspace)
            yield StepRun("github", reached.where, found.group(1), *_result(done))
            if "id" in reached.step:
                values = self.outputs_of(found.group(1))
                outputs = through_the_bridge(values, "github", self.workdir)
                reached.scope.record(str(reached.step["id"]), outputs)

    def runner_env(self) -> dict[str, str]:
        return {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": REVISION,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.workdir),
        }


# Azure Pipelines


@dataclass
class AzureRun:
    """Runs the steps commands of one pipeline with the given variable group; REPOSITORIES
    (alias -> folder) are its repository resources' copies."""

    pipeline: str | Path  # a file of .azure-pipelines, or a path
    group: Mapping[str, str]
    outputs_of: Callable[[str], Mapping[str, object]]
    workdir: Path
    parameters: Mapping[str, object] = field(default_factory=dict)
    workspace: Path = REPO_ROOT
    repositories: Mapping[str, Path] = field(default_factory=dict)
    stage_outputs: dict[tuple[str, str, str], dict[str, object]] = field(default_factory=dict)

    def runs(self) -> Iterator[StepRun]:
        document = azure_pipeline(self.pipeline, self.repositories, **self.parameters)
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
            if not found or not runs(step):  # every step before succeeded
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
            script = self.macros(script, variables, outputs)
            done = run_script(script, env, self.workdir, self.workspace)
            where = f"{Path(self.pipeline).name}/{stage}/{job}/{step.get('name', index)}"
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
            "System.DefaultWorkingDirectory": str(self.workspace),
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
