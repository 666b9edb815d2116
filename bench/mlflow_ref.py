"""The MLflow reference: `mlflow models serve` on the same ONNX model, from a venv of its own
(bench/peers/venvs.py), the model saved with `mlflow.onnx.save_model` first."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from .harness import HOST, Server
from .peers import Endpoint, Peer, rows, serve
from .peers.venvs import ours, pinned_venv

MLFLOW_VERSION = "3.17.2"
PATH = "/invocations"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
SAVE_MODEL = """
import sys, onnx, mlflow.onnx
mlflow.onnx.save_model(onnx.load(sys.argv[1]), sys.argv[2])
"""


def body(batch: int) -> str:
    return json.dumps({"inputs": rows(batch)})


KEEP_ALIVE = Endpoint(PATH, PATH, body)
CLOSE = Endpoint(f"{PATH}, close", PATH, body, ("Connection: close",))


def venv() -> Path:
    """The MLflow venv, installed on first use, with the onnx we convert the model with."""
    return pinned_venv("mlflow", MLFLOW_VERSION, [f"mlflow=={MLFLOW_VERSION}", *ours("onnx")])


def peer(model_file: Path) -> Peer:
    """MLflow with keep-alive clients and with `Connection: close` ones: its answers on a kept
    connection wait about 40 ms (bench/README.md, "Serving")."""
    return Peer("mlflow", partial(_serve, model_file), (KEEP_ALIVE, CLOSE))


def save_model(model_file: Path, out: Path) -> Path:
    """MODEL_FILE saved as an MLflow model (mlflow.onnx.save_model) in OUT."""
    python = str(venv() / "bin" / "python")
    command = [python, "-c", SAVE_MODEL, str(model_file), str(out)]
    subprocess.run(command, check=True, env=os.environ | NO_TELEMETRY | _path_env(), timeout=300)
    return out


@contextmanager
def _serve(model_file: Path, workers: int, port: int) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        model = save_model(model_file, Path(tmp) / "model")
        command = [str(venv() / "bin" / "mlflow"), "models", "serve", "-m", str(model)]
        command += ["--env-manager", "local", "--host", HOST, "--port", str(port)]
        command += ["--workers", str(workers)]
        with serve("mlflow", command, port, KEEP_ALIVE, NO_TELEMETRY | _path_env()) as server:
            yield server


def _path_env() -> dict[str, str]:
    """Put the venv's bin first, so MLflow's `uvicorn` subprocess is the venv's own."""
    return {"PATH": f"{venv() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
