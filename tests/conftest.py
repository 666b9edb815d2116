"""Fixtures shared by every test package: the sample model, trained once per session."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "model"))

import train  # noqa: E402  (model/train.py, the data scientist's script)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> Path:
    """model.onnx + model.json from model/train.py; shared, so never modify it."""
    out = tmp_path_factory.mktemp("model")
    train.write_model(out, name="digits", version="1.0.0")
    return out


@pytest.fixture
def model_dir(trained_model_dir, tmp_path) -> Path:
    """A private copy of the sample model that a test may change."""
    copy = tmp_path / "model"
    shutil.copytree(trained_model_dir, copy)
    return copy
