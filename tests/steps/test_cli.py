"""The command line every step shares: --json, exit codes, the CI output bridge, the list of
commands."""

from __future__ import annotations

import json

from app.card import read_card
from tests.stepscli import run_steps


def test_command_line_outputs(model_dir, tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    github_output, steps_output = tmp_path / "github_output", tmp_path / "outputs.json"
    env = {"GITHUB_OUTPUT": str(github_output), "STEPS_OUTPUT_FILE": str(steps_output)}
    card = read_card(model_dir)

    published = run_steps(
        "publish-model", "--json", "--store", f"file://{store_dir}", "--model-dir", str(model_dir),
        env=env,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {
        "name": "digits",
        "version": "1.0.0",
        "sha256": card.sha256,
    }

    github_output.unlink()
    dest = tmp_path / "dest"
    fetched = run_steps(
        "fetch-model", "--json", "--dest", str(dest),
        env={**env, "MODEL_STORE": str(store_dir), "MODEL_NAME": "digits"},
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    expected = {"name": "digits", "version": "1.0.0", "sha256": card.sha256, "dest": str(dest)}
    assert json.loads(fetched.stdout) == expected
    assert github_output.read_text().splitlines() == [f"{k}={v}" for k, v in expected.items()]
    assert json.loads(steps_output.read_text()) == expected
    assert "fetched digits 1.0.0" in fetched.stderr
