"""The quality gate's pure parts: the golden set read against the card, the metrics (held to
scikit-learn's), and the verdicts against thresholds, production and the card's claims."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, recall_score

from aiship.app.card import TensorSpec, read_card, write_card
from aiship.commands.evaluate import golden_card
from aiship.commands.evaluate.gate import Bounds, Thresholds, judge, load_thresholds
from aiship.commands.evaluate.golden import answers, infer_request, read_golden
from aiship.commands.evaluate.scoring import classification, regression
from aiship.support.errors import ConfigError, IntegrityError
from tests.repo import REPO_ROOT


def test_classification_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(7)
    labels = [str(i) for i in range(5)]
    targets = [str(t) for t in rng.choice(labels, 400)]
    answered = [t if rng.random() < 0.8 else str(rng.choice(labels)) for t in targets]
    metrics = classification(targets, answered, labels)
    recalls = recall_score(targets, answered, labels=labels, average=None)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(targets, answered))
    for label, recall in zip(labels, recalls, strict=True):
        assert metrics[f"recall/{label}"] == pytest.approx(recall)
    assert metrics["macro_recall"] == pytest.approx(recalls.mean())
    assert metrics["min_recall"] == pytest.approx(recalls.min())


def test_a_class_the_golden_set_lacks_has_no_recall():
    metrics = classification(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert "recall/c" not in metrics and metrics["min_recall"] == 0.5


def test_regression_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(3)
    targets = [float(t) for t in rng.uniform(-5, 5, 300)]
    answered = [t + float(rng.normal(0, 0.5)) for t in targets]
    metrics = regression(targets, answered)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(targets, answered))
    assert metrics["r2"] == pytest.approx(r2_score(targets, answered))
    squared = sum((a - t) ** 2 for t, a in zip(targets, answered, strict=True)) / len(targets)
    assert metrics["rmse"] == pytest.approx(squared**0.5)


THRESHOLDS = Thresholds({"accuracy": Bounds(min=0.9, max_drop=0.01), "mae": Bounds(max_drop=0.1)})


def failed(checks):
    return [(c.metric, c.rule) for c in checks if not c.passed]


def test_absolute_bounds_and_the_drop_from_production():
    assert failed(judge({"accuracy": 0.95, "mae": 1.0}, THRESHOLDS)) == []
    assert failed(judge({"accuracy": 0.85, "mae": 1.0}, THRESHOLDS)) == [("accuracy", "min")]
    production = {"accuracy": 0.97, "mae": 0.8}
    checks = judge({"accuracy": 0.955, "mae": 0.95}, THRESHOLDS, baseline=production)
    assert failed(checks) == [("accuracy", "maxDrop"), ("mae", "maxDrop")]
    reasons = [c.reason for c in checks if not c.passed]
    assert reasons[0] == (
        "accuracy 0.9550 is worse than production's 0.9700 by 0.0150, more than maxDrop 0.01"
    )
    # Better than production is never a drop, whichever way the metric points.
    assert failed(judge({"accuracy": 0.99, "mae": 0.1}, THRESHOLDS, baseline=production)) == []


def test_a_baseline_without_the_metric_fails_its_max_drop_and_each_check_names_its_rows():
    checks = judge(
        {"accuracy": 0.95, "mae": 1.0},
        THRESHOLDS,
        baseline={"accuracy": 0.95},
        golden="production's golden set",
    )
    assert failed(checks) == [("mae", "maxDrop")]
    assert {c.golden for c in checks} == {"production's golden set"}
    assert checks[-1].reason == (
        "on production's golden set: production has no mae on these rows: nothing to hold "
        "maxDrop to"
    )
    # No baseline at all (a first release, --no-baseline): no maxDrop checks, and the log says why.
    assert [c.rule for c in judge({"accuracy": 0.95, "mae": 1.0}, THRESHOLDS)] == ["min"]


def test_the_teams_golden_set_is_found_next_to_the_thresholds(tmp_path):
    path = tmp_path / "quality.yaml"
    path.write_text("metrics: {accuracy: {min: 0.9}}\ngoldenSet: golden/team.jsonl\n")
    assert load_thresholds(path).golden_set == tmp_path / "golden/team.jsonl"
    path.write_text("metrics: {accuracy: {min: 0.9}}\n")
    assert load_thresholds(path).golden_set is None


def test_a_threshold_on_a_metric_the_model_lacks_fails():
    checks = judge({"mae": 1.0}, THRESHOLDS)
    assert failed(checks) == [("accuracy", "exists")]
    assert "accuracy is not measured for this model (measured: mae)" in checks[0].reason


def test_a_card_that_claims_more_than_measured_fails_and_says_so():
    thresholds = Thresholds({"accuracy": Bounds(min=0.5)}, claim_tolerance=0.005)
    checks = judge({"accuracy": 0.9689}, thresholds, claimed={"accuracy": 0.99, "f1": 0.9})
    assert failed(checks) == [("accuracy", "claim")]
    assert checks[-1].reason == "the card claims accuracy 0.99, but the image measures 0.9689"
    modest = judge({"accuracy": 0.9689}, thresholds, claimed={"accuracy": 0.965})
    assert failed(modest) == []


def test_the_shipped_thresholds_load():
    thresholds = load_thresholds(REPO_ROOT / "manifests/quality.yaml")
    assert thresholds.metrics["accuracy"].min > 0 and thresholds.batch >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics: {}\n", "metrics: {} should be non-empty"),
        ("metrics: {accuracy: {least: 1}}\n", "unknown fields ['least']"),
        ("metrics: {accuracy: {maxDrop: -1}}\n", "maxDrop: -1 is less than the minimum of 0"),
        ("batch: 0\nmetrics: {accuracy: {min: 1}}\n", "batch: 0 is less than the minimum of 1"),
    ],
)
def test_a_bad_thresholds_file_is_named(tmp_path, text, message):
    path = tmp_path / "quality.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{path}: .*{message[:20]}".replace("[", r"\[")):
        load_thresholds(path)


def test_the_golden_set_becomes_v2_requests_and_answers(trained_model_dir):
    card = golden_card(trained_model_dir)
    rows = read_golden(trained_model_dir, card)
    assert len(rows) == card.golden.rows
    request = infer_request(card, rows[:3])
    assert request["inputs"][0]["shape"] == [3, 64] and len(request["inputs"][0]["data"]) == 192
    assert request["outputs"] == [{"name": "label"}]
    response = {"outputs": [{"name": "label", "shape": [3], "data": [3, 7, 12]}]}
    assert answers(card, response, 3) == ["3", "7", "#12"]


def test_scores_answer_when_the_card_has_no_label_output(trained_model_dir):
    card = read_card(trained_model_dir)
    scores_only = dataclasses.replace(card, outputs=(card.outputs[1],))
    response = {"outputs": [{"name": "probabilities", "data": [[0.1, 0.9] + [0] * 8]}]}
    assert answers(scores_only, response, 1) == ["1"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"inputs": {"pixels": [0]}, "target": "1"}', "exactly input"),
        ('{"inputs": {"input": [0, 1]}, "target": "1"}', "input input has 2 values, not 64"),
        ('{"inputs": {"input": [0]} ', "not JSON"),
    ],
)
def test_a_malformed_golden_row_is_named_by_line(model_dir, line, message):
    card = read_card(model_dir)
    with open(model_dir / "golden.jsonl", "a") as golden:
        golden.write(line + "\n")
    rows = card.golden.rows
    with pytest.raises(ConfigError, match=rf"golden\.jsonl line {rows + 1}: .*{message}"):
        read_golden(model_dir, card)


def test_a_target_outside_the_labels_and_a_short_golden_set(model_dir):
    card = read_card(model_dir)
    row = {"inputs": {"input": [0] * 64}, "target": "ten"}
    (model_dir / "golden.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ConfigError, match="target 'ten' is not one of the card's labels"):
        read_golden(model_dir, card)
    row["target"] = "3"
    (model_dir / "golden.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(
        IntegrityError, match=rf"has 1 rows, but model\.json says {card.golden.rows}"
    ):
        read_golden(model_dir, card)


def test_a_regressor_needs_numeric_targets_and_a_float_output(model_dir):
    card = dataclasses.replace(
        read_card(model_dir), labels=None, outputs=(TensorSpec("value", "FP32", (-1, 1)),)
    )
    write_card(model_dir, card)
    with pytest.raises(ConfigError, match="target must be a number"):
        read_golden(model_dir, card)
    response = {"outputs": [{"name": "value", "data": [1.5, 2.5]}]}
    assert answers(card, response, 2) == [1.5, 2.5]


def test_a_model_without_a_golden_set_cannot_be_evaluated(model_dir):
    write_card(model_dir, dataclasses.replace(read_card(model_dir), golden=None))
    with pytest.raises(ConfigError, match="names no golden set: publish the model with its"):
        golden_card(model_dir)
