"""Azure Pipelines' compile step, as far as our YAML uses it: template parameters substituted
(objects too), conditional insertion (`- ${{ if eq(parameters.X, V) }}:` ... `- ${{ else }}:`),
templates spliced in, each resolved from the folder of the file that names it, or from the root
of a repository resource (`template: PATH@ALIAS`; the caller says where each alias's copy is).
Files load with PyYAML's BaseLoader: Azure's own loader keeps every scalar a string, and the
official schema says so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.repo import REPO_ROOT

AZURE = REPO_ROOT / ".azure-pipelines"
PARAMETER = re.compile(r"\$\{\{\s*parameters\.(\w+)\s*\}\}")
CONDITION = re.compile(r"^\$\{\{\s*(if|elseif)\s+(.*?)\s*\}\}$|^\$\{\{\s*else\s*\}\}$")
EQ = re.compile(r"^(eq|ne)\(\s*parameters\.(\w+)\s*,\s*(.+?)\s*\)$")
BARE = re.compile(r"^(not\()?\s*parameters\.(\w+)\s*\)?$")
SEQUENCES = ("stages", "jobs", "steps")  # what a template holds


def load(text: str) -> object:
    return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds no objects)


def expand(
    document: object,
    parameters: dict,
    base: Path = AZURE,
    repositories: Mapping[str, Path] | None = None,
) -> object:
    """The document with `${{ parameters.X }}` replaced: a scalar that is only the expression
    becomes the parameter's value (an object stays an object), one that holds it gets its text;
    conditional insertions decided; templates spliced in with their own parameters, those of
    REPOSITORIES (alias -> folder) too."""
    if isinstance(document, dict):
        defaults = {p["name"]: p.get("default", "") for p in document.get("parameters", [])}
        if defaults and "stages" in document:
            parameters = {**defaults, **parameters}  # a top-level pipeline: its defaults
    return _splice(_substitute(document, parameters), base, repositories or {})


def pipeline(name: str | Path, repositories: Mapping[str, Path] | None = None, **parameters):
    """The pipeline NAME (a file of .azure-pipelines, or a path), compiled."""
    path = AZURE / name
    return expand(load(path.read_text()), parameters, path.parent, repositories)


def _substitute(node: object, parameters: dict) -> object:
    if isinstance(node, dict):
        return {
            key: value  # a list of parameters declares them: nothing to substitute there
            if key == "parameters" and isinstance(value, list)
            else _substitute(value, parameters)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_substitute(item, parameters) for item in _inserted(node, parameters)]
    if isinstance(node, str):
        whole = PARAMETER.fullmatch(node.strip())
        if whole:
            return parameters.get(whole.group(1), "")
        return PARAMETER.sub(lambda m: str(parameters.get(m.group(1), "")), node)
    return node


def _inserted(items: list, parameters: dict) -> list:
    """A sequence with its `${{ if }}` / `${{ elseif }}` / `${{ else }}` items decided: the
    items of the first branch that holds, in place of the whole chain."""
    result: list = []
    decided = True  # whether the current chain has taken a branch already
    for item in items:
        branch = _condition(item)
        if branch is None:
            result.append(item)
            decided = True
            continue
        kind, expression, body = branch
        if kind == "if":
            decided = False
        if not decided and (kind == "else" or _holds(expression, parameters)):
            result.extend(_inserted(body, parameters))
            decided = True
    return result


def _condition(item: object) -> tuple[str, str, list] | None:
    if not (isinstance(item, dict) and len(item) == 1):
        return None
    ((key, body),) = item.items()
    match = CONDITION.match(str(key).strip())
    if not match:
        return None
    return (match.group(1) or "else"), (match.group(2) or ""), body


def _holds(expression: str, parameters: dict) -> bool:
    """`eq|ne(parameters.X, literal)`, `parameters.X`, `not(parameters.X)`: Azure compares
    strings ignoring case and reads `true`/`false` as booleans, so both sides compare as text."""
    compared = EQ.match(expression)
    if compared:
        function, name, literal = compared.groups()
        equal = _text(parameters.get(name, "")) == _text(literal.strip("'"))
        return equal if function == "eq" else not equal
    bare = BARE.match(expression)
    assert bare, f"no model of the template expression {expression!r}"
    value = _text(parameters.get(bare.group(2), "")) not in ("", "false", "0")
    return not value if bare.group(1) else value


def _text(value: object) -> str:
    return str(value).strip().lower()


def _splice(node: object, base: Path, repositories: Mapping[str, Path]) -> object:
    if isinstance(node, list):
        spliced = []
        for item in node:
            if isinstance(item, dict) and "template" in item:
                path = _template(item["template"], base, repositories)
                template = load(path.read_text())
                declared = template.get("parameters", [])
                defaults = {p["name"]: p.get("default", "") for p in declared}
                given = item.get("parameters") or {}
                unknown = set(given) - set(defaults)
                assert not unknown, f"{item['template']} has no parameter {sorted(unknown)}"
                body = _without_declarations(template)
                body = expand(body, {**defaults, **given}, path.parent, repositories)
                spliced.extend(next(body[key] for key in SEQUENCES if key in body))
            else:
                spliced.append(_splice(item, base, repositories))
        return spliced
    if isinstance(node, dict):
        return {key: _splice(value, base, repositories) for key, value in node.items()}
    return node


def _template(reference: str, base: Path, repositories: Mapping[str, Path]) -> Path:
    """Where `template: REFERENCE` is: PATH@ALIAS from that repository's root, else beside BASE."""
    path, _, alias = reference.partition("@")
    if alias:
        assert alias in repositories, f"{reference}: no copy of the repository {alias!r} given"
        return repositories[alias] / path
    return base / path


def _without_declarations(template: dict) -> dict:
    return {key: value for key, value in template.items() if key != "parameters"}


# Runtime conditions (`condition:` of a stage, job or step), for the functions and values our
# YAML uses: status functions (a run so far succeeded, failed or was canceled), and, or, not,
# eq and ne (strings compared ignoring case, as Azure does) of 'literals' and variables['X'].
STATUS = {
    "succeeded": {"succeeded"},
    "failed": {"failed"},
    "canceled": {"canceled"},
    "always": {"succeeded", "failed", "canceled"},
    "succeededOrFailed": {"succeeded", "failed"},
}
TERM = re.compile(r"\s*(?:(\w+)\(|'((?:[^']|'')*)'|variables\['([\w.]+)'\])\s*")
ON_MAIN = {"Build.SourceBranch": "refs/heads/main"}


def runs(node: Mapping, status: str = "succeeded", variables: Mapping[str, str] = ON_MAIN) -> bool:
    """Whether a stage, job or step with NODE's `condition:` runs when the run so far has
    STATUS (none: `succeeded()`, Azure's default), with VARIABLES."""
    written = str(node.get("condition", "succeeded()"))
    value, rest = _term(written, status, variables)
    assert not rest.strip(), f"cannot read condition {written!r}"
    return bool(value)


def _term(text: str, status: str, variables: Mapping[str, str]) -> tuple[object, str]:
    """The value of the call, literal or variable at the start of TEXT, and the text after."""
    found = TERM.match(text)
    assert found, f"cannot read condition {text!r}"
    name, literal, variable = found.groups()
    rest = text[found.end() :]
    if literal is not None:
        return literal.replace("''", "'"), rest
    if variable is not None:
        return variables.get(variable, ""), rest
    arguments: list[object] = []
    while not rest.startswith(")"):
        value, rest = _term(rest, status, variables)
        arguments.append(value)
        rest = rest.lstrip()
        rest = rest[1:].lstrip() if rest.startswith(",") else rest
    rest = rest[1:]
    if name in STATUS:
        assert not arguments, f"{name}() takes no arguments"
        return status in STATUS[name], rest
    functions = {
        "and": lambda values: all(values),
        "or": lambda values: any(values),
        "not": lambda values: not values[0],
        "eq": lambda values: str(values[0]).lower() == str(values[1]).lower(),
        "ne": lambda values: str(values[0]).lower() != str(values[1]).lower(),
    }
    assert name in functions, f"condition function {name}() is not modelled here"
    return functions[name](arguments), rest
