"""MLServer with a custom runtime (apps/mlserver_runtime.py), as its docs lay a model out:
settings.json for the server, DIGITS/model-settings.json beside the runtime, `mlserver start`."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from ..harness import HOST, INFER_PATH, Server, free_port
from . import APPS, Endpoint, Peer, serve, v2_body
from .venvs import pinned_venv

VERSION = "1.7.1"
# With uvloop 0.23 its parallel workers fail at start (no current event loop) and nothing loads.
PINS = (f"mlserver=={VERSION}", "uvloop==0.21.0")
INFER = Endpoint("V2 infer", INFER_PATH, v2_body)


def peer(model_file: Path) -> Peer:
    return Peer("mlserver", partial(_serve, model_file), (INFER,))


@contextmanager
def _serve(model_file: Path, workers: int, port: int) -> Iterator[Server]:
    venv = pinned_venv("mlserver", VERSION, PINS)
    with tempfile.TemporaryDirectory(prefix="bench-mlserver-") as tmp:
        root = Path(tmp)
        settings = {
            "host": HOST,
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": workers,
            # Both default to folders in the working directory, our repository.
            "environments_dir": str(root / "envs"),
            "metrics_dir": str(root / "metrics"),
        }
        (root / "settings.json").write_text(json.dumps(settings))
        model = root / "digits"
        model.mkdir()
        shutil.copy(APPS / "mlserver_runtime.py", model)
        model_settings = {
            "name": "digits",
            "implementation": "mlserver_runtime.OnnxRuntime",
            "parameters": {"uri": str(model_file)},
        }
        (model / "model-settings.json").write_text(json.dumps(model_settings))
        command = [str(venv / "bin" / "mlserver"), "start", str(root)]
        with serve("mlserver", command, port, INFER) as server:
            yield server
