"""The typed V2 request and response: what parse and decode accept, what they name when they
refuse, and the bodies encode writes, JSON and binary."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from aiship.app.errors import BadRequest, UnsupportedMediaType
from aiship.app.v2 import (
    BINARY,
    HEADER_LENGTH,
    JSON,
    InferenceRequest,
    InferenceResponse,
    RequestInput,
    ResponseOutput,
)

TENSOR = {"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1]}


def size(nbytes: object) -> dict:
    return {"parameters": {"binary_data_size": nbytes}}


def binary_body(header: dict, *chunks: bytes) -> tuple[bytes, str]:
    """A body in the binary tensor data extension's form, and its header length."""
    encoded = json.dumps(header).encode()
    return b"".join([encoded, *chunks]), str(len(encoded))


def test_a_request_parses_into_typed_inputs_outputs_and_id():
    request = InferenceRequest.parse(
        {"id": "r1", "inputs": [TENSOR], "outputs": [{"name": "label"}], "parameters": {}}
    )

    assert request == InferenceRequest(
        inputs=(RequestInput(0, "input", "FP32", (1, 2), [0.5, 1]),),
        outputs=("label",),
        id="r1",
    )


def test_without_outputs_every_output_is_wanted_as_json():
    request = InferenceRequest.parse({"inputs": [TENSOR]})

    assert request.outputs is None and not request.wants_binary("label")


def test_binary_data_output_asks_for_every_output_unless_one_says_otherwise():
    request = InferenceRequest.parse(
        {
            "inputs": [TENSOR],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "p"}],
        }
    )

    assert not request.wants_binary("label") and request.wants_binary("p")


def test_binary_data_asks_for_one_output():
    request = InferenceRequest.parse(
        {"inputs": [TENSOR], "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}
    )

    assert request.wants_binary("label")


def test_a_binary_body_gives_each_input_a_view_of_its_own_bytes():
    first, second = np.arange(4, dtype="<f4"), np.array([7], dtype="<i8")
    header = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 2]} | size(16),
            {"name": "json", "datatype": "INT64", "shape": [1], "data": [3]},
            {"name": "b", "datatype": "INT64", "shape": [1]} | size(8),
        ]
    }
    body, length = binary_body(header, first.tobytes(), second.tobytes())

    request = InferenceRequest.decode(body, BINARY, length)

    binary, inline, last = request.inputs
    assert isinstance(binary.data, memoryview) and binary.data.obj is body  # not copied
    assert np.array_equal(np.frombuffer(binary.data, "<f4"), first)
    assert inline.data == [3]
    assert np.frombuffer(last.data, "<i8").tolist() == [7]


@pytest.mark.parametrize("mimetype", ["", JSON])
def test_a_json_body_decodes_with_or_without_a_content_type(mimetype):
    request = InferenceRequest.decode(json.dumps({"inputs": [TENSOR]}).encode(), mimetype, None)

    assert request.inputs[0].data == [0.5, 1]


@pytest.mark.parametrize(
    ("mimetype", "length", "words"),
    [
        ("text/plain", None, "Content-Type must be application/json, or application/octet"),
        (BINARY, None, f"or application/octet-stream with an {HEADER_LENGTH} header"),
        (JSON, "2", f"a body with an {HEADER_LENGTH} header is application/octet-stream"),
    ],
)
def test_a_body_of_the_wrong_media_type_is_refused(mimetype, length, words):
    with pytest.raises(UnsupportedMediaType) as raised:
        InferenceRequest.decode(b"{}", mimetype, length)

    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("body", "length", "words"),
    [
        (b"{}", "-1", f"{HEADER_LENGTH} must be the JSON header's length"),
        (b"{}", "3", "at most the body's 2, not '3'"),
        (b"{}", "\u00b2", f"{HEADER_LENGTH} must be"),
        (b"[1,", "3", "not valid JSON"),
    ],
)
def test_a_wrong_header_length_is_named_in_one_line(body, length, words):
    with pytest.raises(BadRequest) as raised:
        InferenceRequest.decode(body, BINARY, length)

    assert words in str(raised.value) and "\n" not in str(raised.value)


SIZED = {"name": "input", "datatype": "FP32", "shape": [2]} | size(8)


@pytest.mark.parametrize(
    ("tensor", "tail", "words"),
    [
        (SIZED, b"1234", "more than the 4 bytes left"),
        (SIZED, b"x" * 12, "4 bytes follow the JSON header"),
        ({**SIZED, "data": [1]}, b"x" * 8, "not both"),
        (SIZED | size(1.5), b"", "binary_data_size must be an integer >= 0"),
        (SIZED | size(-1), b"", "binary_data_size must be an integer >= 0"),
    ],
)
def test_binary_data_that_does_not_add_up_is_named_in_one_line(tensor, tail, words):
    body, length = binary_body({"inputs": [tensor]}, tail)

    with pytest.raises(BadRequest) as raised:
        InferenceRequest.decode(body, BINARY, length)

    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([TENSOR], "must be a JSON object"),
        ({"inputs": [TENSOR], "id": 1}, "'id' must be a string"),
        ({"inputs": [TENSOR], "parameters": []}, "the request: parameters must be an object"),
        ({"inputs": [TENSOR], "parameters": {"binary_data_output": 1}}, "true or false"),
        ({"inputs": {}}, "non-empty list"),
        ({"inputs": ["x"]}, "inputs[0] must be an object"),
        ({"inputs": [{**TENSOR, "name": 3}]}, "inputs[0].name must be a string naming an input"),
        ({"inputs": [{**TENSOR, "parameters": 1}]}, "'input': parameters must be an object"),
        ({"inputs": [{**TENSOR, "datatype": None}]}, "datatype must be a string"),
        ({"inputs": [{**TENSOR, "shape": [1, -2]}]}, "shape must be a list of integers >= 0"),
        ({"inputs": [{**TENSOR, "shape": [1.0, 2]}]}, "shape must be a list of integers >= 0"),
        ({"inputs": [TENSOR, TENSOR]}, "input 'input' is given twice"),
        ({"inputs": [TENSOR], "outputs": {"name": "x"}}, "'outputs' must be a list of objects"),
        ({"inputs": [TENSOR], "outputs": [{"name": ["x"]}]}, "each name must be a string"),
        ({"inputs": [TENSOR], "outputs": [{"name": "x", "parameters": 0}]}, "parameters must be"),
        (
            {"inputs": [TENSOR], "outputs": [{"name": "x", "parameters": {"binary_data": "1"}}]},
            "output 'x': parameter binary_data must be true or false",
        ),
    ],
)
def test_a_malformed_request_is_named_in_one_line(body, words):
    with pytest.raises(BadRequest) as raised:
        InferenceRequest.parse(body)

    assert words in str(raised.value) and "\n" not in str(raised.value)


def response(*outputs: ResponseOutput, id: str | None = None) -> InferenceResponse:
    return InferenceResponse("digits", "1.0.0", outputs, id=id)


def test_a_json_response_carries_the_id_only_when_the_request_had_one():
    label = ResponseOutput("label", "INT64", [1], np.array([3]))

    body, headers = response(label).encode()

    assert headers == {"Content-Type": JSON}
    assert json.loads(body) == {
        "model_name": "digits",
        "model_version": "1.0.0",
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [3]}],
    }
    assert json.loads(response(label, id="r1").encode()[0])["id"] == "r1"


def test_a_binary_response_puts_the_binary_outputs_after_the_json_header_in_order():
    scores = np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32)
    outputs = (
        ResponseOutput("label", "INT64", [2], np.array([1, 0]), binary=True),
        ResponseOutput("inline", "INT64", [1], np.array([5])),
        ResponseOutput("scores", "FP32", [2, 2], scores.ravel(), binary=True),
    )

    body, headers = response(*outputs).encode()

    assert headers["Content-Type"] == BINARY
    length = int(headers[HEADER_LENGTH])
    header = json.loads(body[:length])
    sizes = [o.get("parameters", {}).get("binary_data_size") for o in header["outputs"]]
    assert sizes == [16, None, 16]
    assert header["outputs"][1]["data"] == [5] and "data" not in header["outputs"][0]
    assert np.frombuffer(body[length : length + 16], "<i8").tolist() == [1, 0]
    assert np.array_equal(np.frombuffer(body[length + 16 :], "<f4").reshape(2, 2), scores)


def test_a_bytes_output_is_each_element_behind_its_4_byte_length():
    words = np.array(["seven", "é"], dtype=object)

    body, headers = response(ResponseOutput("word", "BYTES", [2], words, binary=True)).encode()
    as_json = json.loads(response(ResponseOutput("word", "BYTES", [2], words)).encode()[0])

    tail = body[int(headers[HEADER_LENGTH]) :]
    assert tail == struct.pack("<I", 5) + b"seven" + struct.pack("<I", 2) + "é".encode()
    assert as_json["outputs"][0]["data"] == ["seven", "é"]
