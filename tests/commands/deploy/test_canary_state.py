"""The canary's state on its Deployment, and the decision a later deploy takes on a canary it
finds: carry on after the last judged step, or remove it and say why."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from aiship.commands.deploy.analysis import load_analysis
from aiship.commands.deploy.canary import canary_deployment, why_not_resume
from aiship.commands.deploy.canary_state import (
    FAILED,
    PASSED,
    STATE_ANNOTATION,
    CanaryState,
    now,
    run_label,
)
from aiship.commands.deploy.release import Release
from tests.repo import MANIFESTS

V1 = Release("registry.test/app@sha256:" + "1" * 64)
V2 = Release("registry.test/app@sha256:" + "2" * 64)
V3 = Release("registry.test/app@sha256:" + "3" * 64)


@pytest.fixture
def analysis():
    return load_analysis(MANIFESTS / "analysis.yaml")  # steps at 25 and 50 %


def started(lifetime: float = 600) -> CanaryState:
    return CanaryState.start(V2.image, V1.image, lifetime)


def on_deployment(state: CanaryState) -> dict:
    stable = {
        "metadata": {"name": "aiship", "annotations": {"aiship.io/applied-sha256": "x"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "aiship", "aiship.io/track": "stable"}},
            "template": {"metadata": {"labels": {"app": "aiship", "aiship.io/track": "stable"}}},
        },
    }
    return canary_deployment(stable, 1, state)


def test_the_state_travels_on_the_canary_deployment_and_reads_back_the_same():
    state = started().judged(1, 25, PASSED, "canary step 1/2: 25% ... ok")
    canary = on_deployment(state)
    # What deploy records on stable is not copied; the canary carries its own state only.
    assert set(canary["metadata"]["annotations"]) == {STATE_ANNOTATION}
    assert CanaryState.of(canary) == state
    assert state.steps[0].run == run_label() and state.run == run_label()


@pytest.mark.parametrize("text", [None, "", "not json", '{"image": "x"}', '{"steps": 3}'])
def test_a_canary_without_a_readable_state_has_none(text):
    canary = on_deployment(started())
    if text is None:
        del canary["metadata"]["annotations"][STATE_ANNOTATION]
    else:
        canary["metadata"]["annotations"][STATE_ANNOTATION] = text
    assert CanaryState.of(canary) is None


def test_only_steps_passed_in_order_count_and_a_resumed_state_keeps_only_those():
    state = started().judged(1, 25, PASSED, "a").judged(2, 50, FAILED, "b")
    assert [step.number for step in state.passed] == [1]
    resumed = replace(state, run="github:elsewhere").resumed(lifetime=30)
    assert resumed.steps == state.passed
    assert resumed.run == run_label()
    assert not resumed.expired() and resumed.expired(now() + timedelta(seconds=31))


def test_a_run_is_named_by_its_ci_system_and_attempt():
    github = {
        "GITHUB_RUN_ID": "7",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/app",
    }
    assert run_label(github) == "github:https://github.com/acme/app/actions/runs/7/attempts/2"
    azure = {
        "TF_BUILD": "True",
        "BUILD_BUILDID": "9",
        "SYSTEM_JOBATTEMPT": "3",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
        "SYSTEM_TEAMPROJECT": "p",
    }
    assert run_label(azure).endswith("p/_build/results?buildId=9&jobAttempt=3")
    assert run_label({}).startswith("local:")
    assert run_label({**github, "GITHUB_RUN_ATTEMPT": "3"}) != run_label(github)


def test_the_same_release_against_the_same_stable_carries_on(analysis):
    state = started().judged(1, 25, PASSED, "a")
    assert why_not_resume(state, V2, V1.image, analysis) is None


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("rolling", "rolls out without one"),
        ("no state", "records no state"),
        ("expired", "expired at"),
        ("another release", "belongs to"),
        ("stable moved", "stable now runs"),
        ("promoted", "stable now runs"),  # died after promotion: stable runs the canary's image
        ("steps changed", "steps changed"),
    ],
)
def test_a_canary_that_cannot_carry_on_is_removed_with_the_reason(analysis, case, reason):
    state: CanaryState | None = started().judged(1, 25, PASSED, "a")
    release, stable, moment, used = V2, V1.image, None, analysis
    if case == "rolling":
        used = None
    elif case == "no state":
        state = None
    elif case == "expired":
        moment = now() + timedelta(seconds=601)
    elif case == "another release":
        release = V3
    elif case == "stable moved":
        stable = V3.image
    elif case == "promoted":
        stable = V2.image
    elif case == "steps changed":
        used = replace(analysis, steps=(replace(analysis.steps[0], weight=10), analysis.steps[1]))
    why = why_not_resume(state, release, stable, used, moment)
    assert why is not None and reason in why
