"""The model servers a user could pick instead of ours, each serving the sample ONNX model with
onnxruntime from a venv of its own (bench/peers/venvs.py).

Every peer module has `peer(model_file) -> Peer`; the code each peer runs (its runtime, model
class, service or API) is in bench/peers/apps/, imported only by the peer's own Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from .. import harness
from ..harness import FEATURES, ROW, Server

# The folder the peers' own code is imported from (their PYTHONPATH or working directory).
APPS = Path(__file__).with_name("apps")
# tox puts our tree on PYTHONPATH; a peer's Python must not see it (we have `app`, `model`, ...).
ISOLATED = {"PYTHONPATH": ""}


@dataclass(frozen=True)
class Endpoint:
    label: str  # as the tables and the chart name it
    path: str
    body: Callable[[int], str]  # the request body for a batch of N rows
    headers: tuple[str, ...] = ()  # sent with every request


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


def serve(
    name: str, command: list[str], port: int, probe: Endpoint, env: dict[str, str] | None = None
) -> AbstractContextManager[Server]:
    """harness.serve for a peer: ready once PROBE answers a batch of one, our tree off its path."""
    return harness.serve(name, command, port, probe.path, probe.body(1), ISOLATED | (env or {}))
