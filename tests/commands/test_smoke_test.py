"""smoke-test against a real server: readiness, the expected build, one real inference."""

from __future__ import annotations

import json

import pytest

from aiship.app.card import read_card
from aiship.commands.smoke_test import sample_request, smoke_test
from aiship.support.errors import IntegrityError, Unavailable
from tests.clirun import run_steps


@pytest.fixture(scope="module")
def server(trained_model_dir, tmp_path_factory, serve_model):
    with serve_model(trained_model_dir, tmp_path_factory.mktemp("smoke") / "log") as running:
        yield running


def test_passes_and_reports_what_runs(server, trained_model_dir):
    card = read_card(trained_model_dir)
    result = smoke_test(
        server.url, expect_model_sha256=card.sha256, expect_revision="test-revision", timeout=10
    )
    assert (result.model_name, result.model_version) == (card.name, card.version)
    assert result.model_sha256 == card.sha256 and result.revision == "test-revision"


def test_a_different_model_fails(server, trained_model_dir):
    with pytest.raises(IntegrityError, match=r"serves model sha256 [0-9a-f]{64}, expected 0{64}"):
        smoke_test(server.url, expect_model_sha256="0" * 64, timeout=10)


def test_a_different_revision_fails(server):
    with pytest.raises(IntegrityError, match="runs code revision test-revision, expected abc"):
        smoke_test(server.url, expect_revision="abc", timeout=10)


def test_no_server_is_a_bounded_wait(closed_port):
    with pytest.raises(Unavailable, match=r"/v2/health/ready did not answer 200 within 1 s"):
        smoke_test(f"http://127.0.0.1:{closed_port}", timeout=1)


def test_sample_request_follows_the_metadata():
    metadata = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 3, 2]},
            {"name": "m", "datatype": "BOOL", "shape": [-1]},
        ]
    }
    request = sample_request(metadata)
    assert request["inputs"][0]["shape"] == [1, 3, 2] and request["inputs"][0]["data"] == [0] * 6
    assert request["inputs"][1]["data"] == [False]


def test_command_line(server, trained_model_dir):
    card = read_card(trained_model_dir)
    run = ["smoke-test", "--url", server.url, "--timeout", "10"]
    ok = run_steps(*run, "--json", timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["model_sha256"] == card.sha256
    bad = run_steps(*run, "--expect-revision", "nope", timeout=60)
    assert bad.returncode == 6
    assert bad.stderr.strip().splitlines() == [
        f"error: {server.url} runs code revision test-revision, expected nope"
    ]
