"""JSON in and out: orjson, with the json module where orjson refuses what clients may send."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from aiship.app import jsonio
from aiship.app.errors import BadRequest


def test_numpy_values_are_numbers_not_strings():
    encoded = jsonio.dumps({"label": np.int64(3), "p": np.float32(0.5), "row": np.arange(3)})
    assert json.loads(encoded) == {"label": 3, "p": 0.5, "row": [0, 1, 2]}


def test_anything_else_is_written_as_text():
    assert json.loads(jsonio.dumps({"path": Path("/models/digits")})) == {"path": "/models/digits"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_still_parse_so_the_data_plane_can_name_them(literal):
    value = jsonio.loads(f'{{"instances": [[1.0, {literal}]]}}'.encode())["instances"][0][1]
    assert not math.isfinite(value)


def test_malformed_json_raises_a_value_error():
    with pytest.raises(ValueError, match="Expecting"):
        jsonio.loads(b'{"instances": [[1.0,')


def test_a_body_nested_past_the_parsers_depth_is_a_value_error_not_a_recursion_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        jsonio.loads(b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize("body", [b'{"inputs": [', b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
def test_a_body_that_is_not_json_is_a_bad_request_saying_so(body):
    with pytest.raises(BadRequest, match="the body is not valid JSON: "):
        jsonio.parse_body(body)
