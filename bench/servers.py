"""`python -m bench servers`: the same Flask app under each production HTTP server it could run on.

For each server, the service (`app:create_app`) and the floor (`bench/floor_app.py`, a constant
answer) with the same worker count, one server at a time, /predict with keep-alive clients:
- gunicorn sync, as shipped (app/gunicorn_conf.py): closes every connection after the answer;
- gunicorn gthread (the same conf, `--worker-class gthread --threads 4`): keeps connections alive;
- granian's WSGI interface (a Rust HTTP server, keep-alive, a thread pool per worker).
The figures decide which server the image runs (issue: the keep-alive server); none is asserted.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from . import harness
from .harness import PREDICT_PATH, Server, WrkResult

CONNECTIONS = (1, 8, 32)
APPS = {"aiship": ("app", "create_app"), "floor": ("bench.floor_app", "create_app")}


@dataclass(frozen=True)
class Point:
    server: str
    app: str
    connections: int
    result: WrkResult


def gunicorn(worker_args: tuple[str, ...]) -> Callable[..., AbstractContextManager[Server]]:
    def start(app: str, workers: int, port: int, env: dict[str, str]):
        module, factory = APPS[app]
        conf = harness.REPO_ROOT / "app" / "gunicorn_conf.py"
        command = [sys.executable, "-m", "gunicorn", "--config", str(conf), *worker_args]
        command.append(f"{module}:{factory}()")
        settings = {
            "HOST": harness.HOST,
            "PORT": str(port),
            "WORKERS": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix=f"{app}-metrics-"),
            **env,
        }
        return harness.serve(app, command, port, PREDICT_PATH, harness.predict_body(), settings)

    return start


def granian(app: str, workers: int, port: int, env: dict[str, str]):
    module, factory = APPS[app]
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory"]
    command += ["--host", harness.HOST, "--port", str(port), "--workers", str(workers)]
    command += ["--no-log", f"{module}:{factory}"]
    settings = {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix=f"{app}-metrics-"), **env}
    return harness.serve(app, command, port, PREDICT_PATH, harness.predict_body(), settings)


SERVERS = {
    "gunicorn sync": gunicorn(()),
    "gunicorn gthread": gunicorn(("--worker-class", "gthread", "--threads", "4")),
    "granian": granian,
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
        f"{point.server:16} {point.app:6} c{point.connections:<3} {r.rps:7.0f} req/s "
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
        "| server | conc. | aiship / its floor | aiship / aiship on gunicorn sync |",
        "| --- | ---: | ---: | ---: |",
    ]
    for server in SERVERS:
        for connections in CONNECTIONS:
            ours = best[(server, "aiship", connections)].result.rps
            floor = best[(server, "floor", connections)].result.rps
            shipped = best[("gunicorn sync", "aiship", connections)].result.rps
            rows.append(
                f"| {server} | {connections} | {ours / floor:.2f}x | {ours / shipped:.2f}x |"
            )
    return "\n".join(rows) + "\n"
