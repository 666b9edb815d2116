"""The HTTP floor: Flask answering a constant on the service's routes, served as the service is
(`harness.shipped_server("floor", "bench.floor_app:create_app", ...)`) or on another server.

`create_work_app` is the floor that also does what no inference service can skip: it reads the
request's body and runs the model (MODEL_DIR's, on a fixed input) before answering the constant.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, Response, request

# The size and shape of a real /predict answer, encoded once.
ANSWER = json.dumps(
    {
        "predictions": [1],
        "model": {"name": "digits", "version": "1.0.0"},
        "probabilities": [[0.001] * 10],
    }
).encode()


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/predict")
    @app.post("/v2/models/<name>/infer")
    def answer(name: str | None = None) -> Response:
        return Response(ANSWER, content_type="application/json")

    return app


def create_work_app() -> Flask:
    from aiship.app.model import OnnxModel, warmup_tensor

    model = OnnxModel.load(Path(os.environ["MODEL_DIR"]))
    tensors = {spec.name: warmup_tensor(spec) for spec in model.card.inputs}
    app = Flask(__name__)

    @app.post("/predict")
    def answer() -> Response:
        request.get_data(cache=False)
        model.predict(tensors)
        return Response(ANSWER, content_type="application/json")

    return app
