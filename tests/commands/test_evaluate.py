"""evaluate-model on real images in a real registry: the built image runs read-only on
127.0.0.1, the golden set goes through its V2 endpoint, and the verdict is recorded with it."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import train  # model/, on the path (tests/conftest.py)
from canary_models import write_skewed
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aiship.app.card import GOLDEN_FILE, MODEL_FILE, read_card, write_card
from aiship.clients.records import EVALUATION, Ledger
from aiship.clients.registry import ImageRef, RegistryClient, RegistryLogin
from aiship.commands.push_image import push_image
from tests.registries import run_step
from tests.repo import REPO_ROOT

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


def evaluate(image: str, model_dir, *flags: str):
    return run_step("evaluate-model", "--image", image, "--model-dir", str(model_dir), *flags)


def released(registry, pushed, model_dir, revision: str) -> str:
    """The digest of MODEL_DIR's image, evaluated (a first release) and running in production."""
    image = pushed(model_dir, revision)
    run = evaluate(image, model_dir)
    assert run.returncode == 0, run.stderr
    digest = image.rsplit("@", 1)[1]
    ledger(registry).mark_running("production", digest)
    return digest


def write_fooling(out, good, misread: int = 3, misread_as: int = 8, share: float = 0.6):
    """A model trained with SHARE of the MISREAD class's labels turned into MISREAD_AS, published
    with a golden set of only the held-out rows it gets right (and a card that claims 1.0)."""
    x_train, x_test, y_train, y_test = train.split()
    labels = y_train.copy()
    rows = np.flatnonzero(labels == misread)
    turned = np.random.default_rng(0).choice(rows, int(share * len(rows)), replace=False)
    labels[turned] = misread_as
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    classifier.fit(x_train, labels)
    onnx_bytes = train.to_onnx_bytes(classifier)
    out.mkdir(parents=True)
    (out / MODEL_FILE).write_bytes(onnx_bytes)
    right = classifier.predict(x_test) == y_test
    golden = train.write_golden(out / GOLDEN_FILE, x_test[right], y_test[right])
    card = dataclasses.replace(
        read_card(good).with_version("1.1.0"),
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        golden=golden,
        metrics={"accuracy": 1.0},
    )
    write_card(out, card)
    return card


def ledger(registry) -> Ledger:
    return Ledger(RegistryClient(RegistryLogin(registry.host)), REPOSITORY)


def test_the_sample_model_passes_then_a_shuffled_labels_model_is_rejected(
    registry, pushed, trained_model_dir, tmp_path
):
    good = pushed(trained_model_dir, "1" * 40)
    run = evaluate(good, trained_model_dir)
    assert run.returncode == 0, run.stderr
    assert "first release: production runs nothing yet" in run.stderr
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


def test_a_golden_set_of_only_the_rows_a_model_gets_right_does_not_pass(
    registry, pushed, trained_model_dir, tmp_path
):
    """The candidate is also scored on production's rows, where its misread class shows."""
    production = released(registry, pushed, trained_model_dir, "5" * 40)
    fooling = tmp_path / "fooling"
    write_fooling(fooling, trained_model_dir)
    image = pushed(fooling, "6" * 40)
    run = evaluate(image, fooling)
    assert run.returncode == 10, run.stderr
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: {image} fails the quality gate: on production's golden set: ")
    (record,) = ledger(registry).read(image.rsplit("@", 1)[1], EVALUATION)
    assert record.payload["baseline"] == production
    own, theirs = record.payload["scores"]
    assert (own["golden"], theirs["golden"]) == ("its own", "production's")
    assert own["metrics"]["accuracy"] > 0.99  # its own rows: nearly all right
    # Production's image measured on the candidate's rows, the candidate on production's.
    assert own["production"]["accuracy"] > 0.9 and theirs["production"]["accuracy"] > 0.9
    assert theirs["metrics"]["recall/3"] < 0.8 <= theirs["production"]["recall/3"]
    assert theirs["sha256"] == read_card(trained_model_dir).golden.sha256
    failing = {
        (c["golden"], c["metric"], c["rule"]) for c in record.payload["checks"] if not c["passed"]
    }
    assert failing and all(golden == "production's golden set" for golden, _, _ in failing)
    assert ("production's golden set", "min_recall", "min") in failing
    assert ("production's golden set", "accuracy", "maxDrop") in failing


def test_the_same_model_in_a_new_image_passes_against_production(
    registry, pushed, trained_model_dir, tmp_path
):
    """A/A: champion and challenger on the same rows, through the same harness, score the same;
    the team's golden set (named in the thresholds) is scored for both too."""
    production = released(registry, pushed, trained_model_dir, "7" * 40)
    thresholds = tmp_path / "quality.yaml"
    team = (trained_model_dir / GOLDEN_FILE).read_text().splitlines()[::3]
    (tmp_path / "team.jsonl").write_text("\n".join(team) + "\n")
    text = (REPO_ROOT / "manifests/quality.yaml").read_text()
    thresholds.write_text(text + "goldenSet: team.jsonl\n")
    image = pushed(trained_model_dir, "8" * 40)
    run = evaluate(image, trained_model_dir, "--thresholds", str(thresholds))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["baseline"] == production
    (record,) = ledger(registry).read(image.rsplit("@", 1)[1], EVALUATION)
    scores = {score["golden"]: score for score in record.payload["scores"]}
    assert sorted(scores) == ["its own", "the team's"]  # production's is its own: same rows
    assert scores["the team's"]["rows"] == len(team)
    for score in scores.values():
        assert score["metrics"] == score["production"]
    drops = [c for c in record.payload["checks"] if c["rule"] == "maxDrop"]
    assert {c["golden"] for c in drops} == {"its own golden set", "the team's golden set"}
    assert "on the team's (sha256" in run.stderr


def test_production_without_an_evaluation_needs_no_baseline_said(
    registry, pushed, trained_model_dir
):
    """An image production runs without an evaluation: refused before anything runs, unless
    --no-baseline, which the record keeps."""
    unevaluated = pushed(trained_model_dir, "9" * 40).rsplit("@", 1)[1]
    ledger(registry).mark_running("production", unevaluated)
    image = pushed(trained_model_dir, "a" * 40)
    run = evaluate(image, trained_model_dir)
    assert run.returncode == 9, run.stderr
    assert f"production runs {unevaluated}, which has no passed evaluation" in run.stderr
    assert "--no-baseline" in run.stderr
    assert ledger(registry).read(image.rsplit("@", 1)[1], EVALUATION) == []

    run = evaluate(image, trained_model_dir, "--no-baseline")
    assert run.returncode == 0, run.stderr
    assert "--no-baseline: not compared with production's" in run.stderr
    (record,) = ledger(registry).read(image.rsplit("@", 1)[1], EVALUATION)
    assert record.payload["baseline"] == "" and record.payload["noBaseline"] == "--no-baseline"
