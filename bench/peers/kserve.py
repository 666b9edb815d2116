"""KServe's Python ModelServer with a custom `Model` (apps/kserve_model.py), started as its docs
show (`ModelServer().start([model])` with KServe's own argument parser), gRPC off."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..harness import INFER_PATH
from . import APPS, V2_BINARY, Endpoint, Peer, instances_body, serve, v2_body
from .venvs import pinned_venv

VERSION = "0.21.0"
PREDICT = Endpoint("v1 predict", "/v1/models/digits:predict", instances_body)
INFER = Endpoint("V2 infer", INFER_PATH, v2_body)


def peer(model_file: Path) -> Peer:
    return Peer("kserve", partial(_serve, model_file), (PREDICT, INFER, V2_BINARY))


def _serve(model_file: Path, workers: int, port: int):
    python = pinned_venv("kserve", VERSION, [f"kserve=={VERSION}"]) / "bin" / "python"
    command = [str(python), str(APPS / "kserve_model.py"), "--model_file", str(model_file)]
    command += ["--http_port", str(port), "--workers", str(workers), "--enable_grpc", "false"]
    return serve("kserve", command, port, PREDICT)
