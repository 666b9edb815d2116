"""Every endpoint and every kind of bad input, through create_app and Flask's test client."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from app.card import read_card


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits(return_X_y=True)
    return images, labels


def raw_post(client, path, data, content_type="application/json"):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(path, data=data, headers=headers)


def v2_input(rows, datatype="FP32", shape=None, name="input"):
    data = np.asarray(rows).ravel().tolist()
    return {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "data": data,
                "shape": shape or list(np.asarray(rows).shape),
            }
        ]
    }


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    meta = client.get("/v2").get_json()
    assert meta["name"] == "aiship" and meta["extensions"] == []


def test_model_metadata_matches_the_card(client, trained_model_dir):
    card = read_card(trained_model_dir)
    for path in ("/v2/models/digits", "/v2/models/digits/versions/1.0.0"):
        meta = client.get(path).get_json()
        assert meta["name"] == card.name and meta["versions"] == [card.version]
        assert meta["inputs"] == [s.to_dict() for s in card.inputs]
        assert meta["outputs"] == [s.to_dict() for s in card.outputs]
    ready = client.get("/v2/models/digits/ready")
    assert ready.get_json() == {"name": "digits", "ready": True}


def test_predict_classifies_real_digits(client, digits):
    images, labels = digits
    response = client.post("/predict", json={"instances": images[:8].tolist()})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"] == {"name": "digits", "version": "1.0.0"}
    assert len(body["predictions"]) == 8 and len(body["probabilities"]) == 8
    assert sum(p == y for p, y in zip(body["predictions"], labels[:8], strict=True)) >= 7
    assert body["predictions"] == [int(np.argmax(p)) for p in body["probabilities"]]
    assert all(abs(sum(p) - 1) < 1e-4 for p in body["probabilities"])


def test_v2_infer_agrees_with_predict(client, digits):
    images, _ = digits
    rows = images[8:12]
    response = client.post("/v2/models/digits/infer", json={**v2_input(rows), "id": "req-7"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_name"] == "digits" and body["model_version"] == "1.0.0"
    assert body["id"] == "req-7"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["shape"] == [4]
    assert outputs["probabilities"]["shape"] == [4, 10]
    assert outputs["probabilities"]["datatype"] == "FP32"
    simple = client.post("/predict", json={"instances": rows.tolist()}).get_json()
    assert outputs["label"]["data"] == simple["predictions"]


def test_v2_infer_takes_nested_data_and_selected_outputs(client, digits):
    images, _ = digits
    body = v2_input(images[:2])
    body["inputs"][0]["data"] = images[:2].tolist()  # nested instead of flat
    body["outputs"] = [{"name": "label"}]
    response = client.post("/v2/models/digits/versions/1.0.0/infer", json=body)
    assert response.status_code == 200
    assert [o["name"] for o in response.get_json()["outputs"]] == ["label"]


def test_version_names_code_and_model(client, trained_model_dir):
    card = read_card(trained_model_dir)
    assert client.get("/version").get_json() == {
        "app": {"revision": "test-revision"},
        "model": {"name": "digits", "version": "1.0.0", "sha256": card.sha256},
    }


def test_openapi_document_is_valid_and_covers_every_route(client):
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").get_json()
    validate(spec)
    from app import rest

    documented = {path for path in spec["paths"]}
    routes = {rule.rule.replace("<", "{").replace(">", "}") for rule in _rules(rest)}
    assert routes == documented


def _rules(rest_module):
    from flask import Flask

    app = Flask("routes")
    app.register_blueprint(rest_module.bp)
    return [r for r in app.url_map.iter_rules() if r.endpoint != "static"]


ROW = [0.0] * 64

BAD_REQUESTS = [
    # (path, body, expected status, words the message must contain)
    ("/predict", {"instances": [[0.0] * 63]}, 400, "shape [1, 63]"),
    ("/predict", {"instances": [ROW, [0.0] * 10]}, 400, "rectangular"),
    ("/predict", {"instances": [["a"] * 64]}, 400, "non-numeric"),
    ("/predict", {"instances": [[True] * 64]}, 400, "booleans"),
    ("/predict", {"instances": [[None] * 64]}, 400, "non-numeric"),
    ("/predict", {"instances": [[1e39] * 64]}, 400, "finite"),
    ("/predict", {"instances": []}, 400, "empty"),
    ("/predict", {"instances": [ROW] * 9}, 400, "limit of 8"),
    ("/predict", {"instances": "x"}, 400, "list of numbers"),
    ("/predict", {"rows": [ROW]}, 400, "instances"),
    ("/predict", [ROW], 400, "instances"),
    ("/v2/models/digits/infer", v2_input([ROW], datatype="FP64"), 400, "expects FP32"),
    ("/v2/models/digits/infer", v2_input([ROW], shape=[2, 64]), 400, "needs 128"),
    ("/v2/models/digits/infer", v2_input([ROW], name="pixels"), 400, "not an input"),
    ("/v2/models/digits/infer", {"inputs": []}, 400, "non-empty list"),
    (
        "/v2/models/digits/infer",
        {"inputs": [{**v2_input([ROW])["inputs"][0], "name": []}]},
        400,
        "is not an input",
    ),
    ("/v2/models/digits/infer", {"inputs": [ROW]}, 400, "must be an object"),
    ("/v2/models/digits/infer", {**v2_input([ROW]), "id": 7}, 400, "'id'"),
    ("/v2/models/digits/infer", {**v2_input([ROW]), "outputs": [{"name": "x"}]}, 400, "'x'"),
    ("/v2/models/digits/infer", v2_input([[0.0] * 64] * 0, shape=[0, 64]), 400, "empty"),
    ("/v2/models/nope/infer", v2_input([ROW]), 404, "'nope' not found"),
    ("/v2/models/digits/versions/9/infer", v2_input([ROW]), 404, "version '9'"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx(client, path, body, status, words):
    response = client.post(path, json=body)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    message = response.get_json()["error"]
    assert words in message and "\n" not in message


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"),
    [
        (b'{"instances": [', "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
        (b'{"instances": [[NaN' + b", 0" * 63 + b"]]}", "application/json", 400, "finite"),
        (b'{"instances": [[Infinity' + b", 0" * 63 + b"]]}", "application/json", 400, "finite"),
        (b"instances=1", "application/x-www-form-urlencoded", 415, "application/json"),
        (b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", 400, "deeply"),
        (json.dumps({"instances": [ROW] * 300}).encode(), "application/json", 413, "65536"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(client, data, content_type, status, words):
    response = raw_post(client, "/predict", data, content_type)
    assert response.status_code == status
    assert words in response.get_json()["error"]


ROUTE_ERRORS = [
    ("GET", "/nope", 404),
    ("GET", "/predict", 405),
    ("GET", "/v2/models/nope", 404),
    ("GET", "/v2/models/nope/ready", 404),
    ("DELETE", "/version", 405),
]


@pytest.mark.parametrize(("method", "path", "status"), ROUTE_ERRORS)
def test_unknown_routes_and_methods_answer_json(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.get_json()["error"]
    if status == 405:  # RFC 9110: say which methods the route takes
        assert response.headers["Allow"]


def test_no_bad_input_reaches_the_unexpected_error_handler(client, logged):
    """Every bad request of this module again: each is answered by a handler that knows it,
    none by the catch-all that logs a traceback."""
    for path, body, status, _ in BAD_REQUESTS:
        assert client.post(path, json=body).status_code == status
    for method, path, status in ROUTE_ERRORS:
        assert client.open(path, method=method).status_code == status

    assert [r for r in logged if r.exc_info] == []


def test_a_body_without_content_type_is_read_as_json(client, digits):
    """V2 clients such as tritonclient send none; the service reads their JSON all the same."""
    images, _ = digits
    body = json.dumps(v2_input(images[:1])).encode()

    response = raw_post(client, "/v2/models/digits/infer", body, content_type=None)

    assert response.status_code == 200, response.get_json()
    assert [o["name"] for o in response.get_json()["outputs"]] == ["label", "probabilities"]
