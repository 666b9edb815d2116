"""The production server: refusal to start on a bad model, metrics, logs, graceful stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families


def serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_refuses_to_start_when_the_model_does_not_match_its_card(model_dir):
    with open(model_dir / "model.onnx", "ab") as f:
        f.write(b"tampered")
    result = serve("--model-dir", str(model_dir), "--port", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "sha256" in lines[0] and "model.onnx" in lines[0]


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--model-dir", "/nonexistent"], {}, "model.json not found"),
        ([], {"MODEL_DIR": ""}, "--model-dir"),
        (["--port", "0"], {}, "PORT=0 is out of range"),
        ([], {"WORKERS": "many"}, "WORKERS='many' is not an integer"),
    ],
)
def test_bad_settings_stop_before_anything_starts(trained_model_dir, args, env, words):
    if "--model-dir" not in args:
        env = {"MODEL_DIR": str(trained_model_dir), **env}
    result = serve(*args, **env)
    assert result.returncode == 2
    assert words in result.stderr and result.stderr.count("\n") == 1


def test_a_malformed_card_is_named(model_dir):
    card = json.loads((model_dir / "model.json").read_text())
    card["inputs"][0]["datatype"] = "FLOAT"
    (model_dir / "model.json").write_text(json.dumps(card))
    result = serve("--model-dir", str(model_dir))
    assert result.returncode == 2
    assert "inputs[0].datatype" in result.stderr


def _sample(server, name: str, **labels: str) -> float:
    """One sample's value on /metrics (0 when absent), read with prometheus_client's parser."""
    text = requests.get(server.url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_metrics_add_up_across_workers(server):
    series = {"method": "GET", "route": "/version", "status": "200"}
    before = _sample(server, "http_request_duration_seconds_count", **series)
    for _ in range(40):  # new connections each time, so both workers take some
        requests.get(server.url + "/version", timeout=5)
    # Whichever worker answers /metrics, it reports the sum of both.
    for _ in range(4):
        assert _sample(server, "http_request_duration_seconds_count", **series) == before + 40
    assert _sample(server, "http_request_duration_seconds_bucket", **series, le="+Inf") == (
        before + 40
    )
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert re.search(
        r'^model_info\{name="digits",sha256="[0-9a-f]{64}",version="1.0.0"\} 1.0$', text, re.M
    )
    assert "model_inference_duration_seconds_count" in text


def test_unknown_methods_share_one_series(server):
    """A client inventing methods must not be able to grow the number of metric series."""
    series = {"method": "other", "route": "<unmatched>", "status": "405"}
    before = _sample(server, "http_request_duration_seconds_count", **series)
    for method in ("PURGE", "BREW", "PROPFIND"):
        assert requests.request(method, server.url + "/version", timeout=5).status_code == 405
    assert _sample(server, "http_request_duration_seconds_count", **series) == before + 3
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert not re.search(r'method="(PURGE|BREW|PROPFIND)"', text)


def test_one_json_log_line_per_request_without_bodies(server):
    marker = f"/v2/models/digits/infer-log-{time.monotonic_ns()}"
    # A value no duration or timestamp can contain: "7.5" matched a 7.5 ms duration once.
    secret = 3.14159265358
    requests.post(server.url + "/predict", json={"instances": [[secret] * 64]}, timeout=5)
    requests.get(server.url + marker, timeout=5)
    for _ in range(5):
        requests.get(server.url + "/v2/health/ready", timeout=5)
    time.sleep(0.2)
    entries = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    mine = [e for e in entries if e.get("path") == marker]
    assert len(mine) == 1
    assert mine[0]["status"] == 404 and mine[0]["method"] == "GET"
    assert isinstance(mine[0]["duration_ms"], float)
    assert not [e for e in entries if e.get("path") == "/v2/health/ready"]
    assert str(secret) not in server.log_path.read_text()


def test_sigterm_finishes_the_request_in_flight(trained_model_dir, tmp_path, serve_model):
    body = json.dumps({"instances": [[1.0] * 64]}).encode()
    with serve_model(trained_model_dir, tmp_path / "server.log") as server:
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
            head = (
                f"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            conn.sendall(head + body[:10])
            time.sleep(0.5)  # the worker is now inside the request, waiting for the rest
            os.killpg(server.process.pid, signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[10:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert b'"predictions"' in response
        assert server.stop() == 0
