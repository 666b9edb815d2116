"""Azure Pipelines' compile step, as far as our YAML uses it: template parameters substituted
(objects too), step templates spliced in. Files load with PyYAML's BaseLoader: Azure's own loader
keeps every scalar a string, and the official schema says so."""

from __future__ import annotations

import re

import yaml

from steps.support.paths import REPO_ROOT

AZURE = REPO_ROOT / ".azure-pipelines"
PARAMETER = re.compile(r"\$\{\{\s*parameters\.(\w+)\s*\}\}")


def load(text: str) -> object:
    return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds no objects)


def expand(document: object, parameters: dict) -> object:
    """The document with `${{ parameters.X }}` replaced: a scalar that is only the expression
    becomes the parameter's value (an object stays an object), one that holds it gets its text;
    step templates (`- template: templates/...`) are spliced in with their own parameters."""
    if isinstance(document, dict):
        defaults = {p["name"]: p.get("default", "") for p in document.get("parameters", [])}
        if defaults and "steps" not in document and "stages" in document:
            parameters = {**defaults, **parameters}  # a top-level pipeline: its defaults
    return _splice(_substitute(document, parameters))


def pipeline(name: str, **parameters: object) -> dict:
    return expand(load((AZURE / name).read_text()), parameters)


def _substitute(node: object, parameters: dict) -> object:
    if isinstance(node, dict):
        return {
            key: value  # a list of parameters declares them: nothing to substitute there
            if key == "parameters" and isinstance(value, list)
            else _substitute(value, parameters)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_substitute(item, parameters) for item in node]
    if isinstance(node, str):
        whole = PARAMETER.fullmatch(node.strip())
        if whole:
            return parameters.get(whole.group(1), "")
        return PARAMETER.sub(lambda m: str(parameters.get(m.group(1), "")), node)
    return node


def _splice(node: object) -> object:
    if isinstance(node, list):
        spliced = []
        for item in node:
            if isinstance(item, dict) and str(item.get("template", "")).startswith("templates/"):
                template = load((AZURE / item["template"]).read_text())
                defaults = {p["name"]: p.get("default", "") for p in template.get("parameters", [])}
                given = {**defaults, **(item.get("parameters") or {})}
                spliced.extend(expand(_without_declarations(template), given)["steps"])
            else:
                spliced.append(_splice(item))
        return spliced
    if isinstance(node, dict):
        return {key: _splice(value) for key, value in node.items()}
    return node


def _without_declarations(template: dict) -> dict:
    return {key: value for key, value in template.items() if key != "parameters"}
