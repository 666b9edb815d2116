"""The HTTP floor: Flask answering a constant on the service's routes, served as the service is
(`harness.shipped_server("floor", "bench.floor_app:create_app", ...)`) or on another server."""

from __future__ import annotations

import json

from flask import Flask, Response

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
