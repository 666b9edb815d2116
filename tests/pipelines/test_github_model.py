"""The model of GitHub's expressions held to GitHub's documented rules ("Evaluate expressions in
workflows and actions": literals, operators, loose equality): falsy values are false, 0, -0, ''
and null, everything else is truthy; `==` between two types casts both to numbers (null 0, true
1, false 0, a string as a JSON number or NaN) and compares strings ignoring case."""

from __future__ import annotations

import pytest

from tests.pipelines.github_model import Scope

CONTEXTS = {"inputs": {"flag": "false", "zero": "0", "on": True, "empty": ""}, "env": {}}


def value(expression: str) -> object:
    return Scope(dict(CONTEXTS)).value(expression)


@pytest.mark.parametrize(
    ("condition", "runs"),
    [
        ("inputs.flag", True),  # the string 'false' is a non-empty string
        ("inputs.zero", True),  # so is '0'
        ("!inputs.flag", False),
        ("inputs.empty", False),
        ("inputs.missing", False),  # null
        ("false", False),
        ("0", False),
        ("inputs.on", True),
    ],
)
def test_truthiness(condition, runs):
    assert value(f"!{condition}") is not runs
    assert value(f"!!{condition}") is runs


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("true == 'true'", False),  # 1 against NaN
        ("inputs.on == 'true'", False),
        ("inputs.on == true", True),
        ("'1' == 1", True),
        ("null == 0", True),
        ("'' == 0", True),
        ("false == 0", True),
        ("'ABC' == 'abc'", True),  # strings compare ignoring case
        ("'abc' != 'abd'", True),
        ("inputs.missing == ''", True),  # null and '' both cast to 0
        ("inputs.flag == false", False),  # 'false' is NaN as a number
        ("0xff == 255", True),
    ],
)
def test_loose_equality(expression, result):
    assert value(expression) is result


def test_and_or_give_an_operand():
    assert value("inputs.flag && 'next'") == "next"
    assert value("inputs.empty || 'fallback'") == "fallback"


def test_an_if_without_braces_is_an_expression_too():
    scope = Scope({"github": {"event_name": "schedule"}})
    assert scope.condition("github.event_name == 'push'") is False
    assert scope.condition("${{ github.event_name == 'schedule' }}") is True
