"""The sample model's own code, model/train.py, for what the local run and its traffic need of it:
training the sample model, and the digits data split exactly as it was split for training."""

from __future__ import annotations

import importlib.util

from ..support.errors import ConfigError
from ..support.paths import project_dir


def train_module():
    """model/train.py, the data scientist's script (not a package, so loaded from its file);
    ConfigError when the train extra (scikit-learn, skl2onnx) is not installed."""
    path = project_dir() / "model" / "train.py"
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: run the local commands in aiship's checkout (or set "
            "AISHIP_PROJECT_DIR to it), where the sample model's script is"
        )
    spec = importlib.util.spec_from_file_location("aiship_sample_train", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"model/train.py needs {exc.name}: install the train extra, pip install -e '.[train]'"
        ) from None
    return module


def digits_split():
    """scikit-learn's digits data set split as model/train.py splits it for training:
    x_train, x_test, y_train, y_test."""
    return train_module().split()
