"""The settings `setup` writes are exactly the ones the pipelines read."""

from __future__ import annotations

import re

import pytest

from aiship.commands.setup.common import (
    AZURE_VARIABLES,
    GITHUB_VARIABLES,
    STEP_ENVIRONMENT,
    parse_names,
    parse_variables,
)
from aiship.support.errors import ConfigError
from tests.repo import REPO_ROOT


def read(folder: str) -> str:
    return "".join(p.read_text() for p in sorted((REPO_ROOT / folder).rglob("*.yml")))


def test_github_variables_are_the_ones_the_workflows_read():
    assert set(GITHUB_VARIABLES) == set(re.findall(r"vars\.([A-Z0-9_]+)", read(".github")))


def test_azure_variables_are_the_ones_the_pipelines_read():
    pipelines = read(".azure-pipelines")
    used = set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", pipelines))
    # what a stage sets from an earlier stage's outputs is not the variable group's
    stage_variables = set(re.findall(r"([A-Z][A-Z0-9_]*): \$\[ *stageDependencies\.", pipelines))
    assert stage_variables >= {"IMAGE", "REVISION", "MODEL_VERSION", "MODEL_SHA256"}
    assert set(AZURE_VARIABLES) == (used - stage_variables) | set(STEP_ENVIRONMENT)


def test_variables_parse_and_keep_everything_after_the_first_equals_sign():
    parsed = parse_variables(["MODEL_STORE=azureblob://a?x=1", "ACR_NAME="], GITHUB_VARIABLES)
    assert parsed == {"MODEL_STORE": "azureblob://a?x=1", "ACR_NAME": ""}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["model_store=x"], "--var 'model_store' is not NAME=VALUE"),
        (["NOPE=x"], "--var NOPE: the pipelines do not read it"),
        (["ACR_NAME=a", "ACR_NAME=b"], "--var ACR_NAME is given twice"),
        # an identity Notation would refuse at the first release is refused when it is set
        (["SIGNING_IDENTITY=CN=aiship,O=Example,C=US"], "lacks ST"),
    ],
)
def test_bad_variables_are_named(items, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_variables(items, GITHUB_VARIABLES)


def test_names_are_split_on_commas():
    assert parse_names(" alice, acme/release ,", "--reviewers") == ["alice", "acme/release"]
    with pytest.raises(ConfigError, match="--reviewers is empty"):
        parse_names(" , ", "--reviewers")
