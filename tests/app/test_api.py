"""Every endpoint and every kind of bad input, through create_app and Flask's test client."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from aiship.app.card import read_card


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
    assert meta["name"] == "aiship" and meta["extensions"] == ["binary_tensor_data"]


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
    from aiship.app import rest

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
        "must be a string naming an input",
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
        (json.dumps({"instances": [ROW] * 300}).encode(), "application/json", 413, "65536"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(client, data, content_type, status, words):
    response = raw_post(client, "/predict", data, content_type)
    assert response.status_code == status
    assert words in response.get_json()["error"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e39])
def test_one_value_that_is_not_finite_in_a_full_batch_is_refused(client, value):
    rows = [ROW] * 7 + [[*ROW[:-1], value]]
    response = raw_post(client, "/predict", json.dumps({"instances": rows}))
    assert response.status_code == 400
    assert "values must be finite numbers" in response.get_json()["error"]


def test_values_near_the_largest_fp32_pass_though_their_sum_overflows(client):
    response = client.post("/predict", json={"instances": [[3e38] * 64] * 8})
    assert response.status_code == 200 and len(response.get_json()["predictions"]) == 8


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


def nested(body: object, depth: int) -> bytes:
    """BODY as JSON with its "@" replaced by empty lists nested DEPTH deep."""
    return json.dumps(body).replace('"@"', "[" * depth + "]" * depth).encode()


V2_TENSOR = v2_input([ROW])["inputs"][0]
NESTED_BODIES = [
    # (path, body, depth, words the message must contain)
    ("/predict", {"instances": "@"}, 5000, "nested too deeply"),
    ("/predict", {"instances": "@"}, 1000, "nested deeper than the model's 2 dimensions"),
    ("/v2/models/digits/infer", {"inputs": [{**V2_TENSOR, "data": "@"}]}, 5000, "too deeply"),
    ("/v2/models/digits/infer", {"inputs": [{**V2_TENSOR, "data": "@"}]}, 1000, "deeper than"),
    ("/v2/models/digits/infer", {"inputs": [{**V2_TENSOR, "name": "@"}]}, 1000, "a string"),
    ("/v2/models/digits/infer", {**v2_input([ROW]), "outputs": [{"name": "@"}]}, 1000, "string"),
]


@pytest.mark.parametrize(("path", "body", "depth", "words"), NESTED_BODIES)
def test_a_deeply_nested_body_gets_a_400_naming_it(client, logged, path, body, depth, words):
    response = raw_post(client, path, nested(body, depth))

    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert [r for r in logged if r.exc_info] == []


def binary_infer(client, rows, header=None, headers=None, shape=None):
    """A V2 infer request in the binary tensor data extension: ROWS as FP32 binary data, with
    the SHAPE the header gives them (their own by default); a header given as None is left out."""
    data = np.asarray(rows, dtype="<f4").tobytes()
    tensor = {"name": "input", "datatype": "FP32", "shape": shape or list(np.shape(rows))}
    tensor["parameters"] = {"binary_data_size": len(data)}
    encoded = json.dumps({**(header or {}), "inputs": [tensor]}).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(encoded)),
        **(headers or {}),
    }
    return client.post(
        "/v2/models/digits/infer",
        data=encoded + data,
        headers={name: value for name, value in headers.items() if value is not None},
    )


def binary_outputs(response) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header of a binary response, and its outputs as arrays."""
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.data[:length])
    arrays, offset = {}, length
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        dtype = {"FP32": "<f4", "INT64": "<i8"}[output["datatype"]]
        if size is None:
            array = np.asarray(output["data"], dtype=dtype)
        else:
            array = np.frombuffer(response.data[offset : offset + size], dtype)
            offset += size
        arrays[output["name"]] = array.reshape(output["shape"])
    assert offset == len(response.data)
    return header, arrays


@pytest.mark.parametrize("content_type", ["application/octet-stream", None])
def test_binary_inputs_and_outputs_give_what_json_gives(client, digits, content_type):
    """With or without a Content-Type: tritonclient sends none."""
    images, _ = digits
    rows = images[:5]
    as_json = client.post("/v2/models/digits/infer", json=v2_input(rows)).get_json()

    response = binary_infer(
        client,
        rows,
        {"id": "b1", "parameters": {"binary_data_output": True}},
        {"Content-Type": content_type},
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    header, arrays = binary_outputs(response)
    assert header["id"] == "b1" and header["model_name"] == "digits"
    expected = {o["name"]: o for o in as_json["outputs"]}
    assert arrays["label"].tolist() == expected["label"]["data"]
    assert arrays["probabilities"].shape == (5, 10)
    assert np.allclose(arrays["probabilities"].ravel(), expected["probabilities"]["data"])


def test_binary_inputs_with_json_outputs_or_one_binary_output(client, digits):
    images, _ = digits
    one_binary = {"outputs": [{"name": "label", "parameters": {"binary_data": True}}]}

    as_json = binary_infer(client, images[:2])
    mixed = binary_infer(client, images[:2], one_binary)

    assert as_json.headers["Content-Type"] == "application/json"
    labels = next(o["data"] for o in as_json.get_json()["outputs"] if o["name"] == "label")
    header, arrays = binary_outputs(mixed)
    assert [o["name"] for o in header["outputs"]] == ["label"]
    assert arrays["label"].tolist() == labels


@pytest.mark.parametrize(
    ("rows", "headers", "shape", "status", "words"),
    [
        ([ROW], {"Content-Type": "text/plain"}, None, 415, "is application/octet-stream"),
        ([ROW], {"Inference-Header-Content-Length": "x"}, None, 400, "the JSON header's length"),
        ([ROW[:63]], {}, None, 400, "shape [1, 63] does not match the model's"),
        ([ROW[:63]], {}, [1, 64], 400, "is 252 bytes but shape [1, 64] of FP32 needs 256"),
        ([[float("nan")] * 64], {}, None, 400, "finite"),
        ([ROW] * 9, {}, None, 400, "limit of 8"),
    ],
)
def test_bad_binary_requests_get_a_clear_4xx(client, rows, headers, shape, status, words):
    response = binary_infer(client, rows, headers=headers, shape=shape)

    assert response.status_code == status
    assert words in response.get_json()["error"]


def test_octet_stream_without_the_header_length_is_refused(client):
    response = raw_post(client, "/v2/models/digits/infer", b"{}", "application/octet-stream")

    assert response.status_code == 415
    assert "Inference-Header-Content-Length" in response.get_json()["error"]
