"""Settings come from flags, then the environment; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiship.app.settings import Settings, SettingsError


def test_environment_then_flags():
    env = {"MODEL_DIR": "/m", "PORT": "9000", "WORKERS": "3", "APP_REVISION": "abc"}
    settings = Settings.from_env(env)
    assert (settings.model_dir, settings.port, settings.workers) == (Path("/m"), 9000, 3)
    assert settings.revision == "abc"
    assert Settings.from_env(env, port=9100, model_dir=None).port == 9100


def test_defaults():
    settings = Settings.from_env({"MODEL_DIR": "/m"})
    assert (settings.host, settings.port, settings.max_batch_size) == ("127.0.0.1", 8080, 256)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "MODEL_DIR"),
        ({"MODEL_DIR": "/m", "PORT": "http"}, "PORT='http' is not an integer"),
        ({"MODEL_DIR": "/m", "PORT": "70000"}, "PORT=70000 is out of range"),
        ({"MODEL_DIR": "/m", "MAX_BATCH_SIZE": "0"}, "MAX_BATCH_SIZE=0"),
    ],
)
def test_bad_settings_are_named(env, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert words in str(info.value)


def test_onnx_threads_share_the_cpus_between_workers():
    settings = Settings.from_env({"MODEL_DIR": "/m", "WORKERS": "64"})
    assert settings.onnx_threads() == 1
