"""model.json: validation, the version scheme, and the sha256 check."""

from __future__ import annotations

import json

import pytest

from aiship.app.card import (
    CardError,
    ModelCard,
    check_version,
    file_sha256,
    read_card,
    verify_model_dir,
    version_key,
)


def card_dict(trained_model_dir) -> dict:
    return json.loads((trained_model_dir / "model.json").read_text())


def test_the_trained_card_round_trips(trained_model_dir):
    data = card_dict(trained_model_dir)
    assert ModelCard.from_dict(data).to_dict() == data
    assert data["sha256"] == file_sha256(trained_model_dir / "model.onnx")
    assert data["metrics"]["accuracy"] > 0.9
    assert data["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]


def test_training_is_deterministic(trained_model_dir, tmp_path):
    import train

    again = train.write_model(tmp_path, name="digits", version="1.0.0")
    assert again.sha256 == read_card(trained_model_dir).sha256


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "Digits!"}, "name"),
        ({"version": "v1"}, "version 'v1'"),
        ({"sha256": "abc"}, "sha256"),
        ({"inputs": []}, "inputs must be a non-empty list"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 64]}]}, "inputs[0].shape"),
        ({"outputs": [{"name": "", "datatype": "FP32", "shape": [-1]}]}, "outputs[0].name"),
        ({"labels": [1, 2]}, "labels"),
        ({"metrics": {"accuracy": "high"}}, "metrics"),
    ],
)
def test_malformed_cards_are_named(trained_model_dir, change, words):
    data = {**card_dict(trained_model_dir), **change}
    with pytest.raises(CardError) as info:
        ModelCard.from_dict(data)
    assert words in str(info.value)


def test_missing_fields_are_listed(trained_model_dir):
    data = card_dict(trained_model_dir)
    del data["sha256"], data["created"]
    with pytest.raises(CardError, match="lacks sha256, created"):
        ModelCard.from_dict(data)


def test_versions_order_numerically():
    versions = ["1.10.0", "1.9.0", "2", "1.2", "10.0.1", "1.2.1"]
    assert sorted(versions, key=version_key) == ["1.2", "1.2.1", "1.9.0", "1.10.0", "2", "10.0.1"]
    assert version_key("1.2") == version_key("1.2.0")
    for bad in ("latest", "1.2.3.4.5", "1..2", "-1", ""):
        with pytest.raises(CardError):
            check_version(bad)


def test_verify_names_a_changed_model(model_dir):
    (model_dir / "model.onnx").write_bytes(b"not the model")
    with pytest.raises(CardError, match=r"model\.onnx has sha256 .* but model\.json says"):
        verify_model_dir(model_dir)


def test_unreadable_card_is_named(model_dir):
    (model_dir / "model.json").write_text("{not json")
    with pytest.raises(CardError, match=r"model\.json cannot be read as JSON"):
        read_card(model_dir)
