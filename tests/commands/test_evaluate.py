"""evaluate-model on real images in a real registry: the built image runs read-only on
127.0.0.1, the golden set goes through its V2 endpoint, and the verdict is recorded with it."""

from __future__ import annotations

import dataclasses
import json

import pytest
from canary_models import write_skewed  # model/, on the path (tests/conftest.py)

from aiship.app.card import read_card, write_card
from aiship.clients.records import EVALUATION, Ledger
from aiship.clients.registry import ImageRef, RegistryClient, RegistryLogin
from aiship.commands.push_image import push_image
from tests.registries import run_step

pytestmark = pytest.mark.docker

REPOSITORY = "aiship"


@pytest.fixture
def pushed(registry, image_builder):
    """push(model_dir, revision) -> REPOSITORY@sha256:... of the app image with that model."""

    def push(model_dir, revision: str) -> str:
        built = image_builder(model_dir, revision=revision)
        target = ImageRef.parse(f"{registry.host}/{REPOSITORY}:{revision[:12]}")
        digest = push_image(RegistryLogin(registry.host), target, source=built.tags[0]).digest
        return f"{target.name}@{digest}"

    return push


def evaluate(image: str, model_dir):
    return run_step("evaluate-model", "--image", image, "--model-dir", str(model_dir))


def ledger(registry) -> Ledger:
    return Ledger(RegistryClient(RegistryLogin(registry.host)), REPOSITORY)


def test_the_sample_model_passes_then_a_shuffled_labels_model_is_rejected(
    registry, pushed, trained_model_dir, tmp_path
):
    good = pushed(trained_model_dir, "1" * 40)
    run = evaluate(good, trained_model_dir)
    assert run.returncode == 0, run.stderr
    outputs = json.loads(run.stdout)
    claimed = read_card(trained_model_dir).metrics["accuracy"]
    assert outputs["result"] == "passed" and outputs["baseline"] == ""
    assert float(outputs["metric_accuracy"]) == pytest.approx(claimed, abs=0.005)
    digest = good.rsplit("@", 1)[1]
    (record,) = ledger(registry).read(digest, EVALUATION)
    assert record.payload["passed"] is True
    assert record.payload["golden"]["rows"] == read_card(trained_model_dir).golden.rows
    assert len([m for m in record.payload["metrics"] if m.startswith("recall/")]) == 10

    # Production runs the good model; a model trained on broken labels is measured against it.
    ledger(registry).mark_running("production", digest)
    skewed = tmp_path / "skewed"
    write_skewed(skewed, trained_model_dir)
    bad = pushed(skewed, "2" * 40)
    run = evaluate(bad, skewed)
    assert run.returncode == 10, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad} fails the quality gate: ")
    assert errors[0].endswith("is below the minimum 0.9") and "accuracy 0.1" in errors[0]
    (rejected,) = ledger(registry).read(bad.rsplit("@", 1)[1], EVALUATION)
    assert rejected.payload["passed"] is False and rejected.payload["baseline"] == digest
    failed = {(c["metric"], c["rule"]) for c in rejected.payload["checks"] if not c["passed"]}
    assert {("accuracy", "min"), ("accuracy", "maxDrop"), ("min_recall", "maxDrop")} <= failed


def test_a_card_that_claims_a_better_accuracy_is_rejected_as_such(registry, pushed, model_dir):
    card = read_card(model_dir)
    write_card(model_dir, dataclasses.replace(card, metrics={"accuracy": 0.999}))
    image = pushed(model_dir, "3" * 40)
    run = evaluate(image, model_dir)
    assert run.returncode == 10, run.stderr
    assert "the card claims accuracy 0.999, but the image measures 0.9" in run.stderr


def test_a_golden_set_that_does_not_match_its_card_is_refused_before_anything_runs(
    registry, model_dir
):
    with open(model_dir / "golden.jsonl", "a") as golden:
        golden.write('{"inputs": {"input": [0]}, "target": "0"}\n')
    image = f"{registry.host}/{REPOSITORY}@sha256:{'0' * 64}"
    run = evaluate(image, model_dir)
    assert run.returncode == 2, run.stderr
    assert "golden.jsonl has sha256" in run.stderr and "but model.json says" in run.stderr
    assert json.loads(run.stdout)["exit_code"] == 2  # --json: the error, and nothing else


def test_an_image_with_another_model_is_not_evaluated_with_this_golden_set(
    registry, pushed, trained_model_dir, tmp_path
):
    other = tmp_path / "skewed"
    write_skewed(other, trained_model_dir)
    image = pushed(trained_model_dir, "4" * 40)
    run = evaluate(image, other)
    assert run.returncode == 6, run.stderr
    assert "evaluate the image with the model it was built from" in run.stderr
    assert ledger(registry).read(image.rsplit("@", 1)[1], EVALUATION) == []
