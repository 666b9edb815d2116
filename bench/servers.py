"""`python -m bench servers`: the same Flask app under each production HTTP server it could run on.

For each server, the service (`app:create_app`) and the floor (`bench/floor_app.py`, a constant
answer) with the same worker count, one server at a time, /predict with keep-alive clients:
- granian as shipped (aiship.app.server): its WSGI interface (a Rust HTTP/1.1 server, keep-alive)
  with one Python thread per worker;
- granian with its own defaults (256 Python threads per worker, HTTP/1 and 2);
- gunicorn sync, what the service ran on before: it closes every connection after the answer;
- gunicorn gthread (`--threads 4`): keeps connections alive;
- uWSGI's HTTP router (`--http-keepalive`, one C process holding the client connections) in front
  of its prefork workers, which it speaks to over a unix socket, one request at a time.
The figures chose the server the image runs; none is asserted.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from aiship.app.server import SERVICE

from . import harness
from .harness import PREDICT_PATH, Server, WrkResult

CONNECTIONS = (1, 8, 32)
APPS = {"aiship": "app:create_app", "floor": "bench.floor_app:create_app"}
BEFORE = "gunicorn sync"  # the ratios' reference


@dataclass(frozen=True)
class Point:
    server: str
    app: str
    connections: int
    result: WrkResult


def shipped(app: str, workers: int, port: int, env: dict[str, str]):
    target = SERVICE if app == "aiship" else APPS[app]
    return harness.shipped_server(app, target, workers, port, env)


def gunicorn(options: tuple[str, ...]) -> Callable[..., AbstractContextManager[Server]]:
    def start(app: str, workers: int, port: int, env: dict[str, str]):
        command = [sys.executable, "-m", "gunicorn", "--bind", f"{harness.HOST}:{port}"]
        command += ["--workers", str(workers), *options, f"{APPS[app]}()"]
        return _serve(app, command, port, env)

    return start


def granian_defaults(app: str, workers: int, port: int, env: dict[str, str]):
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory"]
    command += ["--host", harness.HOST, "--port", str(port), "--workers", str(workers)]
    command += ["--no-log", APPS[app]]
    return _serve(app, command, port, env)


def uwsgi(app: str, workers: int, port: int, env: dict[str, str]):
    command = [str(Path(sys.executable).with_name("uwsgi")), "--http", f"{harness.HOST}:{port}"]
    command += ["--http-keepalive", "--master", "--processes", str(workers), "--lazy-apps"]
    command += ["--need-app", "--die-on-term", "--disable-logging", "--module", f"{APPS[app]}()"]
    return _serve(app, command, port, env)


def _serve(app: str, command: list[str], port: int, env: dict[str, str]):
    settings = {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix=f"{app}-metrics-"), **env}
    return harness.serve(app, command, port, PREDICT_PATH, harness.predict_body(), settings)


SERVERS = {
    "granian": shipped,
    "granian, its defaults": granian_defaults,
    BEFORE: gunicorn(()),
    "gunicorn gthread": gunicorn(("--worker-class", "gthread", "--threads", "4")),
    "uwsgi http": uwsgi,
}


def run(workers: int = 2, seconds: float = 8.0, rounds: int = 2) -> str:
    model_dir = harness.train_model(Path(tempfile.mkdtemp(prefix="bench-servers-")) / "model")
    env = {"MODEL_DIR": str(model_dir), "APP_REVISION": "bench"}
    best: dict[tuple[str, str, int], Point] = {}
    for _ in range(rounds):
        for server, start in SERVERS.items():
            for app in APPS:
                port = harness.free_port()
                with start(app, workers, port, env) as running:
                    for connections in CONNECTIONS:
                        point = measure(server, app, running, connections, seconds)
                        print(line(point), flush=True)
                        key = (server, app, connections)
                        if key not in best or point.result.rps > best[key].result.rps:
                            best[key] = point
    return report(best)


def measure(server: str, app: str, running: Server, connections: int, seconds: float) -> Point:
    requests = [(PREDICT_PATH, harness.predict_body())]
    harness.wrk(running.url(""), requests, connections, 2)
    return Point(
        server, app, connections, harness.wrk(running.url(""), requests, connections, seconds)
    )


def line(point: Point) -> str:
    r = point.result
    return (
        f"{point.server:21} {point.app:6} c{point.connections:<3} {r.rps:7.0f} req/s "
        f"p50 {r.p50_ms:6.2f} p99 {r.p99_ms:6.2f} ms errors {r.errors} "
        f"load {harness.load_average()}"
    )


def report(best: dict[tuple[str, str, int], Point]) -> str:
    rows = [
        "| server | app | conc. | req/s | p50 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (server, app, connections), point in best.items():
        r = point.result
        rows.append(
            f"| {server} | {app} | {connections} | {r.rps:.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} |"
        )
    rows += [
        "",
        f"| server | conc. | aiship / its floor | aiship / aiship on {BEFORE} |",
        "| --- | ---: | ---: | ---: |",
    ]
    for server in SERVERS:
        for connections in CONNECTIONS:
            ours = best[(server, "aiship", connections)].result.rps
            floor = best[(server, "floor", connections)].result.rps
            before = best[(BEFORE, "aiship", connections)].result.rps
            rows.append(
                f"| {server} | {connections} | {ours / floor:.2f}x | {ours / before:.2f}x |"
            )
    return "\n".join(rows) + "\n"
