"""The typed V2 request and response: what parse accepts, and what it names when it refuses."""

from __future__ import annotations

import pytest

from app.errors import BadRequest
from app.v2 import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput

TENSOR = {"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1]}


def test_a_request_parses_into_typed_inputs_outputs_and_id():
    request = InferenceRequest.parse(
        {"id": "r1", "inputs": [TENSOR], "outputs": [{"name": "label"}], "parameters": {}}
    )

    assert request == InferenceRequest(
        inputs=(RequestInput(0, "input", "FP32", (1, 2), [0.5, 1]),),
        outputs=("label",),
        id="r1",
    )


def test_without_outputs_every_output_is_wanted():
    assert InferenceRequest.parse({"inputs": [TENSOR]}).outputs is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([TENSOR], "must be a JSON object"),
        ({"inputs": [TENSOR], "id": 1}, "'id' must be a string"),
        ({"inputs": [TENSOR], "parameters": []}, "'parameters' must be an object"),
        ({"inputs": {}}, "non-empty list"),
        ({"inputs": ["x"]}, "inputs[0] must be an object"),
        ({"inputs": [{**TENSOR, "name": 3}]}, "inputs[0].name 3 is not an input name"),
        ({"inputs": [{**TENSOR, "parameters": 1}]}, "'input': parameters must be an object"),
        ({"inputs": [{**TENSOR, "datatype": None}]}, "datatype must be a string"),
        ({"inputs": [{**TENSOR, "shape": [1, -2]}]}, "shape must be a list of integers >= 0"),
        ({"inputs": [{**TENSOR, "shape": [1.0, 2]}]}, "shape must be a list of integers >= 0"),
        ({"inputs": [TENSOR, TENSOR]}, "input 'input' is given twice"),
        ({"inputs": [TENSOR], "outputs": {"name": "x"}}, "'outputs' must be a list of objects"),
        ({"inputs": [TENSOR], "outputs": [{"name": "x", "parameters": 0}]}, "parameters must be"),
    ],
)
def test_a_malformed_request_is_named_in_one_line(body, words):
    with pytest.raises(BadRequest) as raised:
        InferenceRequest.parse(body)

    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_a_response_carries_the_id_only_when_the_request_had_one():
    output = ResponseOutput("label", "INT64", [1], [3])
    anonymous = InferenceResponse("digits", "1.0.0", (output,))

    assert anonymous.to_dict() == {
        "model_name": "digits",
        "model_version": "1.0.0",
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [3]}],
    }
    assert InferenceResponse("digits", "1.0.0", (output,), id="r1").to_dict()["id"] == "r1"
