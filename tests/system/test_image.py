"""The image as production runs it: read-only, non-root, host network, configured by env."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import requests
from sklearn.datasets import load_digits

from aiship.app.card import read_card
from aiship.app.model import OnnxModel
from aiship.clients.docker import docker
from aiship.support.labels import (
    LABEL_CREATED,
    LABEL_MODEL_NAME,
    LABEL_MODEL_SHA256,
    LABEL_MODEL_VERSION,
    LABEL_REVISION,
    LABEL_SOURCE,
)
from tests.system.containers import image_config, running_container

pytestmark = pytest.mark.docker

# Run inside the container: what it can import, and what its code and model folders hold.
CONTENTS_PROBE = """
import importlib.util, json, os
unwanted = ("sklearn", "skl2onnx", "onnx", "pytest", "train", "aiship.commands", "aiship.local")
print(json.dumps({
    "importable": [m for m in unwanted if importlib.util.find_spec(m)],
    "code": sorted(os.listdir("/opt/aiship")),
    "package": sorted(set(os.listdir("/opt/aiship/aiship")) - {"__pycache__"}),
    "model": sorted(os.listdir("/model")),
}))
"""


def test_predicts_like_the_model_itself(container, trained_model_dir):
    batch = load_digits().data[:16].astype(np.float32)
    expected = OnnxModel.load(trained_model_dir).predict({"input": batch})["label"].tolist()

    response = requests.post(
        f"{container.url}/predict", json={"instances": batch.tolist()}, timeout=10
    )

    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected
    assert response.json()["model"] == {"name": "digits", "version": "1.0.0"}


def test_version_names_the_revision_and_the_model(container, trained_model_dir, image_identity):
    version = requests.get(f"{container.url}/version", timeout=10).json()

    assert version["app"]["revision"] == image_identity["revision"]
    assert version["model"]["sha256"] == read_card(trained_model_dir).sha256


def test_labels_carry_revision_source_and_model(built_image, trained_model_dir, image_identity):
    labels = image_config(built_image.image_id)["Config"]["Labels"]

    assert labels[LABEL_REVISION] == image_identity["revision"]
    assert labels[LABEL_SOURCE] == image_identity["source"]
    assert datetime.fromisoformat(labels[LABEL_CREATED]).tzinfo is not None
    assert (labels[LABEL_MODEL_NAME], labels[LABEL_MODEL_VERSION]) == ("digits", "1.0.0")
    assert labels[LABEL_MODEL_SHA256] == read_card(trained_model_dir).sha256
    assert dict(built_image.labels).items() <= labels.items()


def test_runtime_configuration(built_image, image_identity):
    config = image_config(built_image.image_id)["Config"]

    env = {
        "HOST=0.0.0.0",
        "PORT=8080",
        "MODEL_DIR=/model",
        f"APP_REVISION={image_identity['revision']}",
    }
    assert env <= set(config["Env"])
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    assert config["Cmd"] == ["python", "-m", "aiship.app", "serve"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "aiship.app", "probe"]


def test_every_process_runs_as_non_root(container):
    table = docker(["top", container.name, "-eo", "uid,pid,args"]).splitlines()[1:]

    assert len(table) >= 3  # granian's main process and its two workers
    assert {line.split()[0] for line in table} == {"10001"}


def test_holds_only_the_app_its_runtime_and_the_model(container):
    found = docker(["exec", container.name, "python", "-c", CONTENTS_PROBE], timeout=60)

    assert json.loads(found) == {
        "importable": [],
        "code": ["aiship"],
        "package": ["__init__.py", "app"],
        "model": ["model.json", "model.onnx"],
    }


def test_healthcheck_reaches_healthy(container):
    status = container.wait_health("healthy", timeout=30)

    assert status == "healthy", container.logs()


def test_docker_stop_drains_and_exits_zero(built_image):
    with running_container(built_image.image_id) as running:
        requests.get(f"{running.url}/version", timeout=10)  # a served request, then the stop
        docker(["stop", "--time", "25", running.name], timeout=60)
        state = running.inspect()["State"]

        assert state["ExitCode"] == 0, running.logs()  # 137 would mean killed at the deadline
        assert "Granian shutdown completed" in running.logs()
