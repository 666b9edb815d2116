"""The per-class prediction counter, read back from /metrics as Prometheus would read it."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_digits

from aiship.app import create_app
from aiship.app.metrics import PredictionCounter
from aiship.app.settings import Settings

SERIES = "model_predictions_total"


@pytest.fixture(scope="module")
def images():
    return load_digits(return_X_y=True)[0]


def predicted(text: str) -> Counter:
    """class -> rows, from an exposition."""
    counts: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == SERIES:
                counts[sample.labels["class"]] += sample.value
    return counts


def v2_body(rows, outputs=None) -> dict:
    tensor = {"name": "input", "datatype": "FP32", "shape": list(rows.shape)}
    body = {"inputs": [{**tensor, "data": rows.ravel().tolist()}]}
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def test_every_class_is_a_series_from_the_start(client):
    counts = predicted(client.get("/metrics").get_data(as_text=True))
    assert set(counts) == {*map(str, range(10)), "other"}
    assert set(counts.values()) == {0.0}


def test_predict_and_v2_infer_are_counted_by_the_class_they_answer(client, images):
    answered: Counter = Counter()
    body = client.post("/predict", json={"instances": images[:8].tolist()}).get_json()
    answered.update(str(p) for p in body["predictions"])
    for path, rows, outputs in (
        ("/v2/models/digits/infer", images[8:16], None),
        ("/v2/models/digits/versions/1.0.0/infer", images[16:23], ["label"]),
        # Without the label output, the class is the argmax of the probabilities.
        ("/v2/models/digits/infer", images[23:31], ["probabilities"]),
    ):
        response = client.post(path, json=v2_body(rows, outputs))
        assert response.status_code == 200
        out = {o["name"]: o for o in response.get_json()["outputs"]}
        if "label" in out:
            answered.update(str(label) for label in out["label"]["data"])
        else:
            scores = np.asarray(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"])
            answered.update(str(i) for i in scores.argmax(axis=1))
    counts = predicted(client.get("/metrics").get_data(as_text=True))
    assert sum(answered.values()) == 31 and len(answered) >= 5
    assert +counts == answered


def test_one_row_requests_are_counted_by_the_class_they_answer(client, images):
    """The common request, one row at a time, through the label and the argmax of the scores."""
    answered: Counter = Counter()
    for row in images[:6]:
        body = client.post("/predict", json={"instances": [row.tolist()]}).get_json()
        answered[str(body["predictions"][0])] += 1
    for row in images[6:10]:
        body = client.post("/v2/models/digits/infer", json=v2_body(row[None], ["probabilities"]))
        answered[str(np.argmax(body.get_json()["outputs"][0]["data"]))] += 1
    assert +predicted(client.get("/metrics").get_data(as_text=True)) == answered


def test_classes_below_and_beyond_the_labels_count_as_other():
    registry = CollectorRegistry()
    counter = PredictionCounter(("zero", "one", "two"), "label", None, registry)
    counter.observe({"label": np.array([-2, -1, 0, 2, 3, 12])})
    counter.observe({"label": np.array([[1]])})
    counts = predicted(generate_latest(registry).decode())
    assert +counts == {"zero": 1, "one": 1, "two": 1, "other": 4}


def test_refused_requests_count_nothing(client, images):
    client.post("/predict", json={"instances": [[1.0] * 63]})
    client.post("/v2/models/digits/infer", json=v2_body(images[:9]))  # over MAX_BATCH_SIZE
    assert sum(predicted(client.get("/metrics").get_data(as_text=True)).values()) == 0


def _app_with_card(model_dir, change) -> object:
    card_path = model_dir / "model.json"
    card = json.loads(card_path.read_text())
    change(card)
    card_path.write_text(json.dumps(card))
    return create_app(Settings(model_dir=model_dir, revision="test-revision")).test_client()


def test_a_class_outside_the_labels_counts_as_other(model_dir, images):
    """A card with fewer labels than the model has classes: the rest is one series, "other"."""
    client = _app_with_card(model_dir, lambda card: card.update(labels=["zero", "one", "two"]))
    body = client.post("/predict", json={"instances": images[:40].tolist()}).get_json()
    answered = Counter(["zero", "one", "two"][p] if p < 3 else "other" for p in body["predictions"])
    text = client.get("/metrics").get_data(as_text=True)
    assert answered["other"] > 0 and answered["zero"] > 0
    assert +predicted(text) == answered
    assert set(predicted(text)) == {"zero", "one", "two", "other"}


def test_a_model_without_labels_has_no_prediction_series(model_dir, images):
    client = _app_with_card(model_dir, lambda card: card.pop("labels"))
    assert client.post("/predict", json={"instances": images[:4].tolist()}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert "model_inference_rows_total 4.0" in text
    assert "model_predictions" not in text


def test_counts_add_up_across_workers(server, images):
    before = predicted(requests.get(server.url + "/metrics", timeout=5).text)
    answered: Counter = Counter()
    for start in range(0, 120, 4):  # a new connection each time, so both workers take some
        body = {"instances": images[start : start + 4].tolist()}
        response = requests.post(server.url + "/predict", json=body, timeout=5)
        answered.update(str(p) for p in response.json()["predictions"])
    for _ in range(4):  # whichever worker answers /metrics reports the sum of both
        after = predicted(requests.get(server.url + "/metrics", timeout=5).text)
        assert +(after - before) == answered
