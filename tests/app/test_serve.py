"""The production server (granian, aiship.app.server): refusal to start on a bad model, metrics,
logs, keep-alive, the answers to heads it will not take, a worker replaced, request timeouts,
graceful stop."""

from __future__ import annotations

import contextlib
import gc
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from aiship.app.server import DrainUnreadBody, create_served_app, metrics_parent


def serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiship.app", "serve", *args],
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


def test_the_workers_write_their_metrics_in_memory(server):
    requests.get(server.url + "/version", timeout=5)
    mapped = [m.path for pid in _workers(server) for m in psutil.Process(pid).memory_maps()]
    (folder,) = {os.path.dirname(path) for path in mapped if path.endswith(".db")}
    mounts = [m for m in psutil.disk_partitions(all=True) if folder.startswith(m.mountpoint)]
    assert max(mounts, key=lambda m: len(m.mountpoint)).fstype == "tmpfs"


def test_without_a_memory_folder_the_metrics_go_to_the_temp_folder(tmp_path):
    assert metrics_parent(tmp_path) == tmp_path
    assert metrics_parent(tmp_path / "missing") is None


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
            server.process.send_signal(signal.SIGTERM)  # as the kubelet does: the main process
            time.sleep(0.5)
            conn.sendall(body[10:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert b'"predictions"' in response
        assert server.stop() == 0


def _exchange(server, data: bytes) -> bytes:
    """Send DATA on a new connection; everything the server answers until it closes it (a server
    that stops reading a head it refuses may reset the connection under the rest)."""
    address = urlsplit(server.url)
    answer = b""
    with (
        socket.create_connection((address.hostname, address.port), timeout=10) as conn,
        contextlib.suppress(ConnectionResetError, BrokenPipeError),
    ):
        conn.sendall(data)
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def _status_headers_body(answer: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower(), body


def _workers(server) -> set[int]:
    return {child.pid for child in psutil.Process(server.process.pid).children()}


def _wait_for(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.1)
    return found


def test_connections_stay_open_between_requests(server):
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        conn.request("GET", "/version")
        first = conn.getresponse()
        first.read()
        socket_used = conn.sock
        for _ in range(3):
            conn.request(
                "POST",
                "/predict",
                json.dumps({"instances": [[0.0] * 64]}),
                {"Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200 and not answer.will_close
        assert conn.sock is socket_used
    finally:
        conn.close()


def test_a_uri_over_the_limit_is_a_json_414(server):
    answer = _exchange(
        server,
        b"GET /v2/models/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    status, head, body = _status_headers_body(answer)
    assert status == 414
    assert b"content-type: application/json" in head
    assert "8192 bytes" in json.loads(body)["error"]


LARGE_BODY = b"0" * (50 * 1024 * 1024)  # far over MAX_REQUEST_BYTES, within DRAIN_BYTES


def _urllib_post(url: str, body: bytes) -> tuple[int, bytes]:
    """urllib writes the whole body before it reads a byte of the answer."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def _requests_post(url: str, body: bytes) -> tuple[int, bytes]:
    answer = requests.post(url, body, headers={"Content-Type": "application/json"}, timeout=60)
    return answer.status_code, answer.content


def _curl_post(url: str, body: bytes) -> tuple[int, bytes]:
    """curl (with its Expect: 100-continue for a large body), the body from stdin."""
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code}",
            url,
        ],
        input=body,
        capture_output=True,
        timeout=60,
        check=True,
    )
    answer, _, status = done.stdout.rpartition(b"\n")
    return int(status), answer


@pytest.mark.parametrize(
    "post", [_urllib_post, _requests_post, _curl_post], ids=["urllib", "requests", "curl"]
)
def test_a_body_over_the_limit_gets_its_413_whatever_the_client(server, post):
    """The server reads the refused body to its end before it answers, so a client still sending
    sees the 413, not a reset connection (urllib saw a broken pipe)."""
    status, answer = post(server.url + "/predict", LARGE_BODY)
    assert status == 413
    assert "MAX_REQUEST_BYTES" in json.loads(answer)["error"]
    assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 200


def _refuse(environ, start_response):
    start_response("413 Request Entity Too Large", [("Content-Length", "0")])
    return [b""]


@pytest.mark.parametrize(
    ("headers", "size", "left"),
    [
        ({"CONTENT_LENGTH": "1000"}, 1000, 0),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, 1000, 0),  # drained to its end
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, 5000, 5000 - 4096),  # up to the limit
        ({"CONTENT_LENGTH": "5000"}, 5000, 5000),  # declared past the limit: left unread
        ({"CONTENT_LENGTH": "x"}, 1000, 1000),  # malformed: left unread
        ({}, 1000, 1000),  # no body declared: nothing read
    ],
)
def test_an_unread_body_is_drained_up_to_the_limit(headers, size, left):
    body = io.BytesIO(b"0" * size)
    environ = {"wsgi.input": body, **headers}
    DrainUnreadBody(_refuse, limit=4096)(environ, lambda status, headers: None)
    assert size - body.tell() == left


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 431),
        (
            b"GET /version HTTP/1.1\r\n"
            + b"".join(b"X-%d: a\r\n" % i for i in range(120))
            + b"\r\n",
            431,
        ),
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET /version HTTP/1.1\r\nBad Header: y\r\n\r\n", 400),
    ],
    ids=["uri-over-64KiB", "head-of-1MB", "over-100-fields", "no-request-line", "bad-field"],
)
def test_heads_granian_refuses_get_a_bare_status_not_a_page(server, request_head, status):
    """The one gap in "every answer is JSON": granian answers these before any Python runs,
    with a status and an empty body; no HTML page, no server banner."""
    answered, head, body = _status_headers_body(_exchange(server, request_head))
    assert (answered, body) == (status, b"")
    assert b"content-length: 0" in head


def test_a_killed_worker_is_replaced_and_its_counts_stay(trained_model_dir, tmp_path, serve_model):
    series = {"method": "GET", "route": "/version", "status": "200"}
    with serve_model(trained_model_dir, tmp_path / "server.log") as server:
        for _ in range(20):
            assert requests.get(server.url + "/version", timeout=5).status_code == 200
        workers = _workers(server)
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        replaced = _wait_for(lambda: len(w := _workers(server)) == 2 and killed not in w and w)
        for _ in range(20):
            assert requests.get(server.url + "/version", timeout=5).status_code == 200
        # The dead worker's samples stay in the sums: counters never go back.
        assert _sample(server, "http_request_duration_seconds_count", **series) == 40
        assert replaced - workers and all(psutil.Process(pid).is_running() for pid in replaced)
        assert server.stop() == 0


def test_a_request_past_the_timeout_ends_its_worker(trained_model_dir, tmp_path, serve_model):
    with serve_model(trained_model_dir, tmp_path / "server.log", REQUEST_TIMEOUT="1") as server:
        workers = _workers(server)
        # A body that never comes: the worker's one Python thread waits for it inside the app.
        answer = _exchange(
            server,
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{",
        )
        assert answer == b""  # the connection ended with its worker
        _wait_for(lambda: len(w := _workers(server)) == 2 and w != workers)
        assert requests.get(server.url + "/version", timeout=5).status_code == 200
        lines = [json.loads(x) for x in server.log_lines() if x.startswith("{")]
        (timeout,) = [x for x in lines if x["level"] == "error"]
        assert "REQUEST_TIMEOUT=1" in timeout["message"]
        assert server.stop() == 0


def test_a_worker_keeps_what_the_app_built_out_of_garbage_collection(
    trained_model_dir, monkeypatch
):
    monkeypatch.setenv("MODEL_DIR", str(trained_model_dir))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    before = gc.get_freeze_count()
    try:
        served = create_served_app()
        # The app, its model, routes and metrics sit in the permanent generation, which no
        # collection walks.
        assert gc.get_freeze_count() > before
        assert not any(o is served.app for o in gc.get_objects())
    finally:
        gc.unfreeze()
