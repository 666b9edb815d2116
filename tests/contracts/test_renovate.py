"""renovate.json, held to Renovate's published JSON schema (the copy check-jsonschema ships, as
for the Azure Pipelines schema), and the
files it updates held to what Renovate reads in them: each hash lock's `uv pip compile` header as
its pip-compile manager parses it, and the versions its custom managers find in ./dev."""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from importlib import resources

import jsonschema
import pytest

from tests.repo import REPO_ROOT

# Renovate's schema is generated at its build and published with each release; check-jsonschema
# (a test dependency, pinned) vendors it with its licence, so no copy of ours is needed.
SCHEMA = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "renovate.json"
CONFIG = REPO_ROOT / "renovate.json"
LOCKS = sorted(p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("requirements/*.txt"))

# What Renovate's pip-compile manager accepts in a `uv pip compile` header
# (lib/modules/manager/pip-compile/common.ts at renovatebot/renovate commit
# c2dd4f856f068eeda4c10afc3752c35fe1f6cab1: allowedOptions.uv and uvOptionsWithArguments). Any
# other option fails the manager ("Option ... not supported (yet)"), and an option's argument must
# follow an equal sign ("must have equal sign '=' separating it's argument").
UV_OPTIONS_WITH_ARGUMENTS = {
    "--constraints", "--constraint", "--python-version", "--no-emit-package", "--prerelease",
    "--format", "--resolution", "--fork-strategy", "--exclude-newer", "--exclude-newer-package",
    "--group", "--override", "--overrides", "--output-file", "--extra", "--extra-index-url",
}  # fmt: skip
UV_FLAGS = {"--no-strip-extras", "--universal", "-v", "--generate-hashes", "--emit-index-url",
            "--index-url", "--all-extras"}  # fmt: skip


@cache
def config() -> dict:
    return json.loads(CONFIG.read_text())


def errors(document: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    found = jsonschema.Draft7Validator(schema).iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def js_regex(pattern: str) -> re.Pattern:
    """A Renovate pattern ("/.../" in managerFilePatterns, or a bare matchStrings regex) in
    Python's dialect (named groups are (?P<name>...))."""
    body = pattern[1:-1] if pattern.startswith("/") and pattern.endswith("/") else pattern
    return re.compile(body.replace("(?<", "(?P<"))


def test_the_config_matches_renovates_schema():
    assert errors(config()) == []


def unknown_options(document: object) -> list[str]:
    """Keys that name no Renovate option, at any depth. The schema itself lets unknown keys
    through inside a package rule or a manager's block (Renovate's own validator warns there);
    every option is a property or a definition of the schema, wherever it is set."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    known = {"$schema", *schema["properties"], *schema["definitions"]}
    if isinstance(document, dict):
        here = [key for key in document if key not in known]
        return here + [k for value in document.values() for k in unknown_options(value)]
    if isinstance(document, list):
        return [key for value in document for key in unknown_options(value)]
    return []


def test_the_config_names_only_renovates_options():
    assert unknown_options(config()) == []


def test_the_schema_check_catches_a_misspelt_option_or_a_wrong_type():
    assert errors({**config(), "pinDigest": True}) != []
    assert errors({**config(), "pinDigests": "yes"}) != []
    misspelt = {**config(), "packageRules": [{"matchManager": ["gomod"], "groupName": "x"}]}
    assert errors(misspelt) == [] and unknown_options(misspelt) == ["matchManager"]


def header_command(lock: str) -> list[str]:
    """The command of a lock's header, as the manager's constraintLineRegex finds it."""
    found = re.match(r"^(#.*?\r?\n)+# {4}(\S*)( .*?)?\r?\n", (REPO_ROOT / lock).read_text())
    assert found, f"{lock}: no command in its header"
    return shlex.split(found.group(2) + (found.group(3) or ""))


@pytest.mark.parametrize("lock", LOCKS)
def test_every_lock_is_one_the_pip_compile_manager_can_rerun(lock):
    (pattern,) = config()["pip-compile"]["managerFilePatterns"]
    assert js_regex(pattern).search(lock), f"{lock} is not matched"
    command = header_command(lock)
    assert command[:3] == ["uv", "pip", "compile"], command
    for arg in command[3:]:
        if not arg.startswith("-"):
            assert (REPO_ROOT / arg).is_file(), f"{lock}: source {arg} does not exist"
            continue
        option, equals, _ = arg.partition("=")
        assert option not in UV_OPTIONS_WITH_ARGUMENTS or equals, f"{lock}: {option} without '='"
        assert option in UV_OPTIONS_WITH_ARGUMENTS | UV_FLAGS, f"{lock}: {option} not supported"
    assert f"--output-file={lock}" in command


def test_an_option_the_manager_refuses_is_caught(tmp_path, monkeypatch):
    lock = tmp_path / "requirements" / "x.txt"
    lock.parent.mkdir()
    lock.write_text(
        "# This file was autogenerated by uv via the following command:\n"
        "#    uv pip compile pyproject.toml --python-platform x86_64-manylinux_2_28 "
        "--output-file=requirements/x.txt\n"
    )
    monkeypatch.setattr("tests.contracts.test_renovate.REPO_ROOT", tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    with pytest.raises(AssertionError, match="--python-platform"):
        test_every_lock_is_one_the_pip_compile_manager_can_rerun("requirements/x.txt")


@pytest.mark.parametrize("manager", config()["customManagers"], ids=lambda m: m["depNameTemplate"])
def test_each_custom_manager_finds_its_one_pin(manager):
    files = [
        p
        for p in REPO_ROOT.iterdir()
        if p.is_file() and any(js_regex(f).search(p.name) for f in manager["managerFilePatterns"])
    ]
    found = [
        m.group("currentValue")
        for path in files
        for regex in manager["matchStrings"]
        for m in js_regex(regex).finditer(path.read_text())
    ]
    assert len(found) == 1 and re.fullmatch(r"\d+\.\d+\.\d+", found[0]), found


def test_every_go_module_is_in_a_group():
    rules = [r for r in config()["packageRules"] if r.get("matchManagers") == ["gomod"]]
    prefixes = [f.removesuffix("**") for r in rules for f in r["matchFileNames"]]
    for go_mod in REPO_ROOT.glob("src/aiship/tools/**/go.mod"):
        path = go_mod.relative_to(REPO_ROOT).as_posix()
        assert any(path.startswith(prefix) for prefix in prefixes), path
