"""The MLflow reference: `mlflow models serve` on the same ONNX model, from a pinned venv.

MLflow is heavy and conflicts with nothing of ours only when kept apart, so it lives in a venv
of its own under the user cache dir, created on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from .harness import HOST, ROW, cache_dir, serve

MLFLOW_VERSION = "3.17.2"
PATH = "/invocations"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
SAVE_MODEL = """
import sys, onnx, mlflow.onnx
mlflow.onnx.save_model(onnx.load(sys.argv[1]), sys.argv[2])
"""


def body() -> str:
    return json.dumps({"inputs": [ROW]})


def venv() -> Path:
    """The MLflow venv, installed on first use; the same onnx and onnxruntime as ours."""
    path = cache_dir() / f"bench-mlflow-{MLFLOW_VERSION}"
    done = path / ".installed"
    if not done.exists():
        print(f"installing MLflow {MLFLOW_VERSION} into {path} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        pins = [f"mlflow=={MLFLOW_VERSION}"]
        pins += [f"{name}=={version(name)}" for name in ("onnx", "onnxruntime")]
        subprocess.run(
            [str(path / "bin" / "python"), "-m", "pip", "install", "-q", *pins],
            check=True,
            timeout=1800,
        )
        done.touch()
    return path


def save_model(model_dir: Path, out: Path) -> Path:
    """model.onnx saved as an MLflow model (mlflow.onnx.save_model) in OUT."""
    python = str(venv() / "bin" / "python")
    command = [python, "-c", SAVE_MODEL, str(model_dir / "model.onnx"), str(out)]
    subprocess.run(command, check=True, env=os.environ | NO_TELEMETRY | _path_env(), timeout=300)
    return out


def mlflow_server(mlflow_model: Path, workers: int, port: int):
    command = [str(venv() / "bin" / "mlflow"), "models", "serve", "-m", str(mlflow_model)]
    command += ["--env-manager", "local", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers)]
    return serve("mlflow", command, port, PATH, body(), env=NO_TELEMETRY | _path_env())


def _path_env() -> dict[str, str]:
    """Put the venv's bin first, so MLflow's `uvicorn` subprocess is the venv's own."""
    return {"PATH": f"{venv() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
