"""Serving throughput and latency: aiship against MLflow and the HTTP floor, in one run.

One server runs at a time, each with the same worker count, so they never share the CPUs.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path

from . import harness, mlflow_ref
from .harness import INFER_PATH, PREDICT_PATH, Server, WrkResult

CLOSE = "Connection: close"


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    body: str


@dataclass(frozen=True)
class Point:
    server: str
    endpoint: str
    mode: str  # "keep-alive" (what the client asks) or "close"
    connections: int
    result: WrkResult
    load: str


@dataclass(frozen=True)
class Contender:
    name: str
    start: Callable[[int], AbstractContextManager[Server]]
    endpoints: tuple[Endpoint, ...]
    modes: tuple[str, ...]


def floor_server(workers: int, port: int) -> AbstractContextManager[Server]:
    """bench/floor_app.py under gunicorn with the service's own gunicorn_conf.py."""
    return harness.gunicorn_app("floor", "bench.floor_app:create_app()", workers, port)


def contenders(model_dir: Path, workers: int, with_mlflow: bool) -> list[Contender]:
    ours = (
        Endpoint("/predict", PREDICT_PATH, harness.predict_body()),
        Endpoint("V2 infer", INFER_PATH, harness.infer_body()),
    )
    found = [
        Contender(
            "aiship", lambda p: harness.our_server(model_dir, workers, p), ours, ("keep-alive",)
        ),
        Contender("floor", lambda p: floor_server(workers, p), ours, ("keep-alive",)),
    ]
    if with_mlflow:
        mlflow_model = mlflow_ref.save_model(model_dir, model_dir.parent / "mlflow-model")
        found.append(
            Contender(
                "mlflow",
                lambda p: mlflow_ref.mlflow_server(mlflow_model, workers, p),
                (Endpoint("/invocations", mlflow_ref.PATH, mlflow_ref.body()),),
                ("keep-alive", "close"),
            )
        )
    return found


def measure(
    server: Server, contender: Contender, connections: int, seconds: float, warmup: float
) -> list[Point]:
    """Every (endpoint, mode) point of one server at one concurrency."""
    points = []
    for endpoint in contender.endpoints:
        for mode in contender.modes:
            headers = [CLOSE] if mode == "close" else []
            requests = [(endpoint.path, endpoint.body)]
            harness.wrk(server.url(""), requests, connections, warmup, headers)
            result = harness.wrk(server.url(""), requests, connections, seconds, headers)
            point = Point(
                contender.name, endpoint.label, mode, connections, result, harness.load_average()
            )
            print(_point_line(point), file=sys.stderr, flush=True)
            points.append(point)
    return points


def run(
    workers: int = 2,
    seconds: float = 10,
    warmup: float = 2,
    concurrencies: tuple[int, ...] = (1, 8, 32),
    with_mlflow: bool = True,
    rounds: int = 1,
) -> str:
    """Run every point ROUNDS times, keep each point's best round, return Markdown.

    All servers are up together but only one is loaded at a time: the points that are compared
    are taken back to back, so a change in the machine's other load hits them alike.
    """
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, ExitStack() as stack:
        model_dir = harness.train_model(Path(tmp) / "model")
        load_before = harness.load_average()
        found = contenders(model_dir, workers, with_mlflow)
        servers = [stack.enter_context(c.start(harness.free_port())) for c in found]
        best: dict[tuple, Point] = {}
        for _ in range(rounds):
            for connections in concurrencies:
                for contender, server in zip(found, servers, strict=True):
                    for p in measure(server, contender, connections, seconds, warmup):
                        key = (p.server, p.endpoint, p.mode, p.connections)
                        if key not in best or p.result.rps > best[key].result.rps:
                            best[key] = p
        facts = {s.name: {"startup_s": s.startup_s, **s.memory_mib()} for s in servers}
    names = [c.name for c in found]
    keys = sorted(best, key=lambda k: (names.index(k[0]), *k[1:]))
    return report([best[k] for k in keys], facts, workers, seconds, rounds, load_before)


def report(
    points: list[Point], facts: dict, workers: int, seconds: float, rounds: int, load: str
) -> str:
    extra = os.environ.get("GUNICORN_CMD_ARGS", "")
    lines = [
        f"{workers} workers each; wrk {seconds:.0f} s per point after a warm-up; batch 1; "
        f"best of {rounds} round(s).",
        f"Load average (1, 5, 15 min) at the start: {load}."
        + (f" GUNICORN_CMD_ARGS={extra!r}." if extra else ""),
        "",
        "| server | endpoint | client | conc. | req/s | p50 ms | p99 ms | errors | load 1/5/15 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in points:
        r = p.result
        lines.append(
            f"| {p.server} | {p.endpoint} | {p.mode} | {p.connections} | {r.rps:.0f} "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {p.load} |"
        )
    lines += ["", *ratios(points), "", *startup_memory(facts)]
    return "\n".join(lines) + "\n"


def ratios(points: list[Point]) -> list[str]:
    """aiship over the floor (same endpoint) and over MLflow (keep-alive, close, and its best)."""
    rps = {(p.server, p.endpoint, p.mode, p.connections): p.result.rps for p in points}
    mlflow = {(k[2], k[3]): v for k, v in rps.items() if k[0] == "mlflow"}
    lines = [
        "| endpoint | conc. | aiship req/s | / floor | / MLflow keep-alive | / MLflow close "
        "| / MLflow best |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (server, endpoint, mode, conc), value in rps.items():
        if server != "aiship":
            continue
        floor = rps.get(("floor", endpoint, mode, conc))
        keep, close = mlflow.get(("keep-alive", conc)), mlflow.get(("close", conc))
        best = max(keep or 0, close or 0) or None
        cells = [_ratio(value, other) for other in (floor, keep, close, best)]
        lines.append(f"| {endpoint} | {conc} | {value:.0f} | {' | '.join(cells)} |")
    return lines


def startup_memory(facts: dict) -> list[str]:
    lines = [
        "| server | startup to first answer s | RSS MiB (sum of processes) | PSS MiB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, f in facts.items():
        lines.append(f"| {name} | {f['startup_s']:.2f} | {f['rss_mib']:.0f} | {f['pss_mib']:.0f} |")
    return lines


def _ratio(value: float, other: float | None) -> str:
    return f"{value / other:.2f}x" if other else "-"


def _point_line(p: Point) -> str:
    r = p.result
    return (
        f"{p.server:7s} {p.endpoint:13s} {p.mode:10s} c{p.connections:<3d} {r.rps:8.0f} req/s "
        f"p50 {r.p50_ms:6.2f} p99 {r.p99_ms:7.2f} ms errors {r.errors} load {p.load}"
    )
