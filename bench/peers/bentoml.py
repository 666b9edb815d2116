"""BentoML: a service class (apps/bentoml_service.py), its worker count in its decorator, served
by `bentoml serve`; its home (model store, logs) in a temp folder, usage tracking off."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from ..harness import HOST, PREDICT_PATH, Server
from . import APPS, Endpoint, Peer, instances_body, serve
from .venvs import pinned_venv

VERSION = "1.4.40"
PREDICT = Endpoint("/predict", PREDICT_PATH, instances_body)


def peer(model_file: Path) -> Peer:
    return Peer("bentoml", partial(_serve, model_file), (PREDICT,))


@contextmanager
def _serve(model_file: Path, workers: int, port: int) -> Iterator[Server]:
    bentoml = pinned_venv("bentoml", VERSION, [f"bentoml=={VERSION}"]) / "bin" / "bentoml"
    command = [str(bentoml), "serve", "bentoml_service:Digits", "--working-dir", str(APPS)]
    command += ["--host", HOST, "--port", str(port)]
    command += ["--arg", f"model_file={model_file}", "--arg", f"workers={workers}"]
    with tempfile.TemporaryDirectory(prefix="bench-bentoml-") as home:
        env = {"BENTOML_HOME": home, "BENTOML_DO_NOT_TRACK": "true"}
        with serve("bentoml", command, port, PREDICT, env) as server:
            yield server
