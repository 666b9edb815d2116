"""The model servers a user could pick instead of ours, each serving the sample ONNX model with
onnxruntime from a venv of its own (bench/peers/venvs.py).

Every peer module has `peer(model_file) -> Peer`; the code each peer runs (its runtime, model
class, service or API) is in bench/peers/apps/, imported only by the peer's own Python. The
request bodies and the V2 binary endpoint, which ours and the peers share, are here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy

from aiship.support.errors import IntegrityError

from .. import harness
from ..harness import FEATURES, INFER_PATH, ROW, Body, Server

# The folder the peers' own code is imported from (their PYTHONPATH or working directory).
APPS = Path(__file__).with_name("apps")
# tox puts our tree on PYTHONPATH; a peer's Python must not see it (we have `app`, `model`, ...).
ISOLATED = {"PYTHONPATH": ""}

HEADER_LENGTH = "Inference-Header-Content-Length"
# The V2 datatypes of numbers, as numpy reads their binary data.
V2_DTYPES = {
    "BOOL": "?",
    **{f"INT{bits}": f"<i{bits // 8}" for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": f"<u{bits // 8}" for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": f"<f{bits // 8}" for bits in (16, 32, 64)},
}


@dataclass(frozen=True)
class Endpoint:
    label: str  # as the tables and the chart name it
    path: str
    body: Callable[[int], str | Body]  # the request body for a batch of N rows, text as JSON
    headers: tuple[str, ...] = ()  # sent with every request
    # Called with the endpoint's URL and a batch before that batch is timed; raises when the
    # answers are wrong.
    check: Callable[[str, int], None] | None = None


@dataclass(frozen=True)
class Peer:
    name: str
    start: Callable[[int, int], AbstractContextManager[Server]]  # (workers, port)
    endpoints: tuple[Endpoint, ...]


def rows(batch: int) -> list[list[float]]:
    return [ROW] * batch


def instances_body(batch: int) -> str:
    """{"instances": [...]}: our /predict, KServe's v1 protocol, BentoML's and LitServe's APIs."""
    return json.dumps({"instances": rows(batch)})


def v2_body(batch: int) -> str:
    """An Open Inference Protocol (V2) request, the tensor's data flat in row-major order."""
    tensor = {"name": "input", "shape": [batch, FEATURES], "datatype": "FP32", "data": ROW * batch}
    return json.dumps({"inputs": [tensor]})


def v2_binary_body(batch: int) -> Body:
    """The same request in the V2 binary tensor data extension, every output asked for as binary
    data: the JSON header, then the tensor's float32 bytes (little-endian, row-major)."""
    data = numpy.asarray(rows(batch), dtype="<f4").tobytes()
    tensor = {
        "name": "input",
        "shape": [batch, FEATURES],
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(data)},
    }
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    headers = (("Content-Type", "application/octet-stream"), (HEADER_LENGTH, str(len(header))))
    return Body(header + data, headers)


def v2_outputs(answer: harness.Answer) -> dict[str, numpy.ndarray]:
    """The outputs of a V2 infer answer by name, each as its datatype and shape, whether their
    data is in the JSON or in the binary data after it."""
    length = int(answer.headers.get(HEADER_LENGTH, len(answer.content)))
    offset, outputs = length, {}
    for output in json.loads(answer.content[:length])["outputs"]:
        dtype = numpy.dtype(V2_DTYPES[output["datatype"]])
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values = numpy.asarray(output["data"], dtype)
        else:
            values = numpy.frombuffer(answer.content, dtype, size // dtype.itemsize, offset)
            offset += size
        outputs[output["name"]] = values.reshape(output["shape"])
    return outputs


def same_as_json(url: str, batch: int) -> None:
    """Raise unless URL answers the binary request for BATCH with binary outputs that hold the
    same values as its answer to the JSON request."""
    binary, plain = harness.post(url, v2_binary_body(batch)), harness.post(url, v2_body(batch))
    for answer, what in ((binary, "binary"), (plain, "JSON")):
        if answer.status != 200:
            raise IntegrityError(
                f"{url} answered the {what} request at batch {batch} with {answer.status}: "
                f"{answer.content[:200]!r}; fix that before timing it"
            )
    if HEADER_LENGTH not in binary.headers:
        raise IntegrityError(
            f"{url} answered binary_data_output with no {HEADER_LENGTH} header (outputs as JSON); "
            f"the binary endpoint would time another path: make the server send binary outputs"
        )
    try:
        got, expected = v2_outputs(binary), v2_outputs(plain)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(
            f"{url} at batch {batch}: an answer is not a V2 infer response ({exc!r}); fix the "
            f"server before timing it"
        ) from exc
    differ = sorted(
        name
        for name in got.keys() | expected.keys()
        if name not in got
        or name not in expected
        or not numpy.array_equal(got[name], expected[name])
    )
    if differ:
        raise IntegrityError(
            f"{url} at batch {batch}: the binary answer's outputs {differ} differ from the JSON "
            f"answer's; fix the server's binary path before timing it"
        )


# The V2 infer endpoint sent and answered in binary, checked against the JSON answer.
V2_BINARY = Endpoint("V2 infer, binary", INFER_PATH, v2_binary_body, check=same_as_json)


def serve(
    name: str, command: list[str], port: int, probe: Endpoint, env: dict[str, str] | None = None
) -> AbstractContextManager[Server]:
    """harness.serve for a peer: ready once PROBE answers a batch of one, our tree off its path."""
    return harness.serve(name, command, port, probe.path, probe.body(1), ISOLATED | (env or {}))
