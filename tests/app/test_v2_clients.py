"""The official V2 clients against the real service, each used with its defaults as its users
would: tritonclient.http and KServe's InferenceRESTClient, from a venv of their own
(tests/app/v2_clients), against the session's server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from aiship.app.card import read_card
from aiship.app.model import OnnxModel
from tests.app import v2_clients

CLIENTS = ("triton", "kserve")
CASES = [
    {"batch": batch, "binary_inputs": inputs, "binary_outputs": outputs}
    for batch in (1, 5)
    for inputs in (True, False)
    for outputs in (True, False)
]


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    images, _ = load_digits(return_X_y=True)
    return images[:5].astype(np.float32)


@pytest.fixture(scope="module")
def model(trained_model_dir) -> OnnxModel:
    return OnnxModel.load(trained_model_dir)


@pytest.fixture(scope="module")
def seen(server, trained_model_dir, rows) -> dict[str, dict]:
    """What each client saw, every case in one run of its script."""
    card = read_card(trained_model_dir)
    job = {
        "url": server.url,
        "model": card.name,
        "input": card.inputs[0].name,
        "outputs": [spec.name for spec in card.outputs],
        "rows": rows.tolist(),
        "cases": CASES,
    }
    return {client: v2_clients.drive(client, job) for client in CLIENTS}


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_finds_the_server_live_and_ready(seen, client):
    assert seen[client]["live"] is True
    assert seen[client]["ready"] is True
    assert seen[client]["model_ready"] is True


def test_tritonclient_reads_server_and_model_metadata(seen, trained_model_dir):
    """KServe's REST client has no metadata call."""
    card = read_card(trained_model_dir)
    server, model = seen["triton"]["server"], seen["triton"]["model"]

    assert server["name"] == "aiship" and "binary_tensor_data" in server["extensions"]
    assert model["name"] == card.name and model["versions"] == [card.version]
    assert model["inputs"] == [spec.to_dict() for spec in card.inputs]
    assert model["outputs"] == [spec.to_dict() for spec in card.outputs]


@pytest.mark.parametrize(
    "index",
    range(len(CASES)),
    ids=[
        f"batch{c['batch']}-{'binary' if c['binary_inputs'] else 'json'}-in-"
        f"{'binary' if c['binary_outputs'] else 'json'}-out"
        for c in CASES
    ],
)
@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_gets_the_models_answer(seen, model, rows, client, index):
    case = seen[client]["cases"][index]
    expected = model.predict({model.card.inputs[0].name: rows[: case["batch"]]})

    assert {key: case[key] for key in CASES[index]} == CASES[index]
    assert case["binary_response"] is CASES[index]["binary_outputs"]
    assert case["outputs"]["label"] == expected["label"].tolist()
    assert np.allclose(case["outputs"]["probabilities"], expected["probabilities"])


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_shows_the_services_error_message(seen, client):
    assert "model 'no-such-model' not found" in seen[client]["missing_model"]
