"""Files the repository declares (the canary analysis, the quality gate): YAML, held to a JSON
schema, with one-line errors that name the field and what it must be."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

from .errors import ConfigError


def read_declared(path: Path, schema: Mapping[str, object], what: str) -> dict[str, Any]:
    """PATH's YAML, valid against SCHEMA; WHAT names the kind of file for a missing one, e.g.
    'a canary analysis file (manifests/analysis.yaml)'."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: point at {what}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise ConfigError(f"{path} cannot be read as YAML: {problem}") from None
    error = best_match(Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        raise ConfigError(f"{path}: {explain(error)}")
    # An object, as the schema's top level requires; the schema, not a type, says what it holds.
    return cast("dict[str, Any]", data)


def explain(error: ValidationError) -> str:
    """One schema error as 'field: what is wrong: what it must be' (each schema "description"
    says what a valid value is)."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    where = where.lstrip(".")
    if error.validator == "required":
        missing = next(n for n in error.validator_value if n not in error.instance)
        name = f"{where}.{missing}".lstrip(".")
        fix = error.schema["properties"][missing].get("description", "see the file's comments")
        return f"{name} is missing: add it ({fix})"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return f"{where or 'the top level'} has unknown fields {unknown}: the fields are {known}"
    fix = error.schema.get("description")
    problem = f"{where or 'the file'}: {error.message}"
    return f"{problem}: it must be {fix}" if fix else problem
