"""GitHub Actions' run of a workflow, as far as our workflows and actions use it: which jobs run,
in `needs` order; reusable workflows (`jobs.<id>.uses`) called with their typed inputs and
handing their outputs back; composite actions (`steps[*].uses`, our own, local or by
OWNER/REPO/PATH@REF) spliced in with their inputs, defaults and outputs; `${{ }}` expressions
evaluated against the contexts GitHub documents (inputs, steps, needs, jobs, vars, github,
runner, env). An action that is neither ours nor local (actions/setup-python, azure/login) is
reported as a step and not entered.

Where `uses:` finds things: `./PATH` is in the workspace, unless an earlier actions/checkout of
the job put another repository at that path; OWNER/REPO/PATH@REF is in REPOSITORIES when named
there (the tests map our own repository to this checkout, as act's --local-repository does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CHECKOUT = "actions/checkout@"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
REMOTE = re.compile(r"^([\w.-]+/[\w.-]+)/(.+)@([\w./-]+)$")
TOKEN = re.compile(r"\s*(\|\||&&|==|!=|!|\(|\)|'(?:[^']|'')*'|[\w.+-]+)")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # JSON's, and a leading +
HEX = re.compile(r"0x[0-9a-fA-F]+")
# The job status check functions, given the job's status so far (`job.status`: the model walks a
# run in which every step succeeds, so success unless a test says otherwise).
STATUS_FUNCTIONS = {
    "success": lambda status: status == "success",
    "failure": lambda status: status == "failure",
    "cancelled": lambda status: status == "cancelled",
    "always": lambda status: True,
}
STATUS_CALL = re.compile(r"\b(?:success|failure|cancelled|always)\s*\(")


@dataclass
class Scope:
    """The contexts `${{ }}` reads at one point of a run; `steps` is shared by the steps of one
    job or one action, so an output recorded there is seen by the steps after it."""

    contexts: dict[str, object]

    def child(self, **contexts: object) -> Scope:
        return Scope({**self.contexts, **contexts})

    def value(self, expression: str) -> object:
        return _Parser(expression, self.contexts).parse()

    def text(self, template: str) -> str:
        """TEMPLATE with each `${{ }}` replaced by its value as text."""
        return EXPRESSION.sub(lambda m: _as_text(self.value(m.group(1))), template)

    def evaluated(self, template: object) -> object:
        """A value that is one expression keeps its type (a boolean stays one); else text."""
        whole = EXPRESSION.fullmatch(str(template).strip())
        return self.value(whole.group(1)) if whole else self.text(str(template))

    def condition(self, written: object) -> object:
        """An `if:`, which is an expression with or without `${{ }}`; one that calls no status
        function is `success() && (it)`, as GitHub reads it (none: `success()`)."""
        if isinstance(written, bool):
            written = str(written).lower()
        text = EXPRESSION.sub(lambda m: m.group(1), str(written or "success()").strip())
        if not STATUS_CALL.search(text):
            text = f"success() && ({text})"
        return self.value(text)

    def record(self, step_id: str, outputs: Mapping[str, object]) -> None:
        """A step that ran: its outputs, and its outcome (the job's status once it ended)."""
        outcome = self.contexts.get("job", {}).get("status", "success")  # type: ignore[union-attr]
        self.contexts["steps"][step_id] = {
            "outputs": _Recorded(outputs),
            "outcome": outcome,
            "conclusion": outcome,
        }


class _Recorded(dict):
    """A step's outputs as it handed them on: naming one it has not is a mistake, where GitHub
    would quietly give an empty string."""


@dataclass(frozen=True)
class Step:
    """One step as the runner reaches it: a `run:` script or a `uses:` it does not enter."""

    job: str  # the job's id, "CALLER/CALLED" inside a reusable workflow
    where: str  # job, then each action's step id, down to this step
    step: Mapping[str, object]
    scope: Scope
    env: Mapping[str, str]  # workflow, job, action step and step env, evaluated


@dataclass
class GitHubModel:
    """Walks WORKFLOW (a path) as GitHub would run it on EVENT to main with these inputs."""

    workspace: Path
    repositories: Mapping[str, Path] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    github: Mapping[str, object] = field(default_factory=dict)
    runner: Mapping[str, str] = field(default_factory=dict)
    # A job that fails or is cancelled (STATUS failure or cancelled) at the first step whose
    # script holds FAILS_AT: the steps after it see that status (what its clean-up steps do).
    status: str = "success"
    fails_at: str | None = None

    def steps(
        self, workflow: Path, inputs: Mapping[str, object] | None = None, event: str = "push"
    ) -> Iterator[Step]:
        github = {"event_name": event, "ref": "refs/heads/main", "ref_name": "main"}
        scope = Scope(
            {
                "github": {**github, **self.github},
                "runner": dict(self.runner),
                "vars": dict(self.variables),
                "env": {},
                "inputs": _dispatched(workflow, inputs or {}),
            }
        )
        yield from self._workflow(workflow, scope, prefix="", outputs={})

    def _workflow(
        self, path: Path, scope: Scope, prefix: str, outputs: dict[str, dict]
    ) -> Iterator[Step]:
        document = _load(path)
        env = _texts(document.get("env"), scope)
        jobs = document["jobs"]
        ran: dict[str, dict] = {}  # job id -> its outputs
        for name in needs_order(jobs):
            job = jobs[name]
            needs = {n: {"outputs": ran[n]} for n in _as_list(job.get("needs")) if n in ran}
            if len(needs) < len(_as_list(job.get("needs"))):
                continue  # a job whose needs were skipped is skipped
            job_scope = scope.child(needs=needs, steps={})
            if not _truthy(job_scope.condition(job.get("if"))):
                continue
            if "uses" in job:
                ran[name] = {}
                yield from self._called(job, job_scope, f"{prefix}{name}", ran[name])
                continue
            job_env = {**env, **_texts(job.get("env"), job_scope)}
            job_id = f"{prefix}{name}"
            steps_scope = job_scope.child(job={"status": "success"})
            yield from self._steps(job["steps"], steps_scope, job_env, job_id, job_id, {})
            ran[name] = {n: job_scope.text(str(v)) for n, v in (job.get("outputs") or {}).items()}
        outputs.update(ran)

    def _called(self, job: dict, scope: Scope, name: str, outputs: dict) -> Iterator[Step]:
        """A reusable workflow: typed inputs from `with:`, its jobs, its outputs handed back."""
        path = self._located(job["uses"], {})
        document = _load(path)
        declared = document.get("on", document.get(True))["workflow_call"]  # YAML 1.1: on is True
        given = {key: scope.evaluated(value) for key, value in (job.get("with") or {}).items()}
        inputs = _inputs(declared.get("inputs") or {}, given, name, scope)
        called = Scope({**scope.contexts, "inputs": inputs, "needs": {}, "steps": {}})
        jobs: dict[str, dict] = {}
        yield from self._workflow(path, called, f"{name}/", jobs)
        done = called.child(jobs={key: {"outputs": value} for key, value in jobs.items()})
        for key, spec in (declared.get("outputs") or {}).items():
            outputs[key] = done.text(str(spec["value"]))

    def _steps(
        self,
        steps: list[dict],
        scope: Scope,
        env: Mapping[str, str],
        job: str,
        where: str,
        checkouts: dict[str, Path],
    ) -> Iterator[Step]:
        for index, step in enumerate(steps):
            here = f"{where}/{step.get('id', index)}"
            if not _truthy(scope.condition(step.get("if"))):
                continue
            step_env = {**env, **_texts(step.get("env"), scope)}
            uses = str(step.get("uses", ""))
            action = self._action(uses, checkouts)
            if action is None:
                if uses.startswith(CHECKOUT) and "path" in (step.get("with") or {}):
                    repository = scope.text(str(step["with"].get("repository", "")))
                    assert not repository or repository in self.repositories, repository
                    path = scope.text(str(step["with"]["path"]))
                    checkouts[path] = self.repositories.get(repository, self.workspace)
                yield Step(job, here, step, scope, step_env)
                if self.fails_at and self.fails_at in str(step.get("run", "")):
                    scope.contexts["job"]["status"] = self.status  # type: ignore[index]
                continue
            yield from self._composite(action, step, scope, step_env, job, here, checkouts)

    def _composite(
        self,
        folder: Path,
        step: dict,
        scope: Scope,
        env: Mapping[str, str],
        job: str,
        where: str,
        checkouts: dict[str, Path],
    ) -> Iterator[Step]:
        action = _load(folder / "action.yml")
        given = {key: scope.text(str(value)) for key, value in (step.get("with") or {}).items()}
        declared = action.get("inputs") or {}
        inputs = {
            key: str(_as_text(value))
            for key, value in _inputs(declared, given, str(folder), scope).items()
        }
        inner = scope.child(inputs=inputs, steps={})
        yield from self._steps(action["runs"]["steps"], inner, env, job, where, checkouts)
        if "id" in step:
            outputs = action.get("outputs") or {}
            scope.record(step["id"], {k: inner.text(str(o["value"])) for k, o in outputs.items()})

    def _action(self, uses: str, checkouts: Mapping[str, Path]) -> Path | None:
        """The folder of an action we can enter, or None."""
        if not uses.startswith("./") and not REMOTE.match(uses):
            return None
        if uses.startswith("./") or REMOTE.match(uses).group(1) in self.repositories:
            return self._located(uses, checkouts)
        return None

    def _located(self, uses: str, checkouts: Mapping[str, Path]) -> Path:
        remote = REMOTE.match(uses)
        if remote:
            repository, path, _ = remote.groups()
            assert repository in self.repositories, f"{uses}: no copy of {repository} given"
            return self.repositories[repository] / path
        relative = uses.removeprefix("./")
        for prefix, root in checkouts.items():
            if relative.startswith(prefix.rstrip("/") + "/"):
                return root / relative[len(prefix.rstrip("/")) + 1 :]
        return self.workspace / relative


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


def _inputs(
    declared: Mapping[str, dict], given: Mapping[str, object], where: str, scope: Scope
) -> dict[str, object]:
    """Declared defaults (their expressions evaluated where the call is), then what was given;
    an input not declared, or a required one not given, is the caller's mistake."""
    unknown = set(given) - set(declared)
    assert not unknown, f"{where} has no input {sorted(unknown)}"
    values: dict[str, object] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        else:
            assert not spec.get("required"), f"{where}: required input {name!r} not given"
            value = scope.evaluated(spec.get("default", ""))
        if spec.get("type") == "boolean":  # GitHub refuses a call that gives it anything else
            assert isinstance(value, bool), f"{where}: boolean input {name!r} given {value!r}"
        values[name] = value
    return values


def _dispatched(workflow: Path, given: Mapping[str, object]) -> dict[str, object]:
    """A run's inputs as the `inputs` context holds them: a `type: boolean` input of
    workflow_dispatch is a boolean there, though the API and the form send 'true'/'false'."""
    triggers = _load(workflow).get("on", _load(workflow).get(True)) or {}
    declared = (triggers if isinstance(triggers, dict) else {}).get("workflow_dispatch") or {}
    values = dict(given)
    for name, spec in (declared.get("inputs") or {}).items():
        if spec.get("type") == "boolean" and isinstance(values.get(name), str):
            assert values[name].lower() in ("true", "false"), f"{name}: {values[name]!r}"
            values[name] = values[name].lower() == "true"
    return values


def _texts(mapping: Mapping[str, object] | None, scope: Scope) -> dict[str, str]:
    return {name: scope.text(str(value)) for name, value in (mapping or {}).items()}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value] if value else []


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _truthy(value: object) -> bool:
    """GitHub's falsy values are false, 0, -0, '', null (and NaN); every other value, the strings
    'false' and '0' included, is truthy."""
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, Mapping | list):
        return True
    return bool(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _number(value: object) -> float:
    """GitHub's cast to a number: null 0, true 1, false 0, a string parsed as a JSON number
    ('' is 0), anything else NaN."""
    kind = _kind(value)
    if kind == "null":
        return 0.0
    if kind in ("boolean", "number"):
        return float(value)  # type: ignore[arg-type]
    if kind == "string":
        text = str(value).strip()
        if not text:
            return 0.0
        if NUMBER.fullmatch(text):
            return float(text)
        if HEX.fullmatch(text):
            return float(int(text, 16))
    return math.nan


def _equal(left: object, right: object) -> bool:
    """GitHub's loose `==`: values of one type compare as such (strings ignoring case, objects
    and arrays only to themselves); of two types, both are cast to numbers, so
    `true == 'true'` is false (1 against NaN) and `'1' == 1` is true."""
    if _kind(left) != _kind(right):
        return _number(left) == _number(right)
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if _kind(left) == "object":
        return left is right
    return left == right


class _Parser:
    """`a || b`, `a && b`, `a == b`, `a != b`, `!a`, `( )`, 'literals', true/false/null,
    numbers, context paths (`inputs.aiship-ref`) and the status functions (`cancelled()`): the
    expression forms our files use.
    `||` and `&&` give an operand, as GitHub's do; comparisons ignore case, as GitHub's do."""

    def __init__(self, text: str, contexts: Mapping[str, object]):
        self.tokens = TOKEN.findall(text)
        assert not TOKEN.sub("", text).strip(), f"cannot read ${{{{ {text} }}}}"
        self.position = 0
        self.contexts = contexts
        self.text = text

    def parse(self) -> object:
        value = self._or()
        assert self.position == len(self.tokens), f"cannot read ${{{{ {self.text} }}}}"
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _or(self) -> object:
        return self._chain("||", self._and, lambda left, right: left if _truthy(left) else right)

    def _and(self) -> object:
        return self._chain(
            "&&", self._compare, lambda left, right: right if _truthy(left) else left
        )

    def _chain(
        self,
        operator: str,
        operand: Callable[[], object],
        pick: Callable[[object, object], object],
    ) -> object:
        """OPERAND (OPERATOR OPERAND)*, left to right, each pair's value chosen by PICK as the
        runner does: || and && give one of their operands, not a boolean."""
        value = operand()
        while self._peek() == operator:
            self._take()
            value = pick(value, operand())
        return value

    def _compare(self) -> object:
        value = self._unary()
        if self._peek() in ("==", "!="):
            operator = self._take()
            equal = _equal(value, self._unary())
            return equal if operator == "==" else not equal
        return value

    def _unary(self) -> object:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._unary())
        if self._peek() == "(":
            self._take()
            value = self._or()
            assert self._take() == ")", f"unbalanced ${{{{ {self.text} }}}}"
            return value
        return self._primary(self._take())

    def _primary(self, token: str) -> object:
        if token in STATUS_FUNCTIONS and self._peek() == "(":
            self._take()
            assert self._take() == ")", f"{token} takes no arguments: ${{{{ {self.text} }}}}"
            status = self.contexts.get("job", {}).get("status", "success")  # type: ignore[union-attr]
            return STATUS_FUNCTIONS[token](status)
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        if token in ("true", "false"):
            return token == "true"
        if token == "null":
            return None
        if HEX.fullmatch(token):
            return int(token, 16)
        if NUMBER.fullmatch(token):
            return float(token) if re.search(r"[.eE]", token) else int(token)
        value: object = self.contexts
        for part in token.split("."):
            if not isinstance(value, Mapping):
                return None  # a property of nothing is nothing, as in GitHub's expressions
            if isinstance(value, _Recorded):
                assert part in value, (
                    f"{self.text}: the step has no output {part!r} ({sorted(value)})"
                )
            value = value.get(part)
        return value
