"""The inference service: a Flask app serving one ONNX model over the Open Inference Protocol.

Importing the package loads nothing heavy: the pipeline steps import `card` (the model card
contract) without flask, numpy or onnxruntime. `create_app` imports what the service needs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Load, verify and warm up the model, then build the app around it."""
    from flask import Flask

    from . import docs, rest
    from .dataplane import DataPlane
    from .jsonio import OrjsonProvider
    from .logs import configure_logging
    from .metrics import Metrics
    from .model import OnnxModel
    from .settings import Settings

    settings = settings or Settings.from_env(os.environ)
    configure_logging()
    model = OnnxModel.load(settings.model_dir, threads=settings.onnx_threads())
    metrics = Metrics(model.card)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json = OrjsonProvider(app)
    app.extensions["dataplane"] = DataPlane(
        model, settings, metrics.observe_inference, metrics.observe_predictions
    )
    app.extensions["metrics"] = metrics

    rest.init_app(app)
    app.register_blueprint(docs.bp)
    return app
