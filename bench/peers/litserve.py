"""LitServe: a LitAPI (apps/litserve_api.py) with WORKERS inference workers on the CPU
(`workers_per_device`) and, by its default, as many API server processes in front of them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..harness import HOST, PREDICT_PATH
from . import APPS, Endpoint, Peer, instances_body, serve
from .venvs import pinned_venv

VERSION = "0.2.19"
PREDICT = Endpoint("/predict", PREDICT_PATH, instances_body)


def peer(model_file: Path) -> Peer:
    return Peer("litserve", partial(_serve, model_file), (PREDICT,))


def _serve(model_file: Path, workers: int, port: int):
    python = pinned_venv("litserve", VERSION, [f"litserve=={VERSION}"]) / "bin" / "python"
    command = [str(python), str(APPS / "litserve_api.py"), str(model_file), str(workers)]
    return serve("litserve", [*command, HOST, str(port)], port, PREDICT)
