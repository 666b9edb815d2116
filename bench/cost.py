"""Where a request's CPU goes: worker CPU per /predict for the floor, the floor that reads the body
and runs the model (the least an inference service can do), aiship, and aiship with one part
switched off, each under the same wrk load, back to back.

`python -m bench cost` (or `./dev bench cost`). Every server is the service's own (granian, as
aiship.app.server runs it, 2 workers). The variants are the shipped app with parts replaced after it
is built (create_variant below, the parts named in COST_WITHOUT): the access log line and the
Prometheus observations by no-ops, the onnxruntime run by its answer to a fixed input, the input
checks by a fixed tensor. Every other byte of the request path is the same.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

from aiship.app.server import RequestTimeout

from . import harness, serving
from .harness import PREDICT_PATH, Server

VARIANTS = {
    "aiship as shipped": "",
    "without the access log line": "access-log",
    "without the Prometheus observations": "metrics",
    "without both": "access-log,metrics",
    "without the model run (a fixed answer from onnxruntime)": "model",
    "without the input checks (a fixed input tensor)": "checks",
    "without all four": "access-log,metrics,model,checks",
}


def create_variant() -> RequestTimeout:
    """The service as served, with the parts named in COST_WITHOUT (comma-separated) switched
    off."""
    from aiship.app import rest
    from aiship.app.model import warmup_tensor
    from aiship.app.server import create_served_app

    served = create_served_app()
    app = served.app
    off = set(filter(None, os.environ.get("COST_WITHOUT", "").split(",")))
    if "access-log" in off:
        rest.log_request = lambda *args: None
    dataplane = app.extensions["dataplane"]
    if "metrics" in off:
        app.extensions["metrics"].observe_request = lambda *args: None
        dataplane._observe_inference = lambda *args: None
    if "model" in off:
        answer = dataplane.model.predict(
            {s.name: warmup_tensor(s) for s in dataplane.model.card.inputs}
        )
        dataplane.model.predict = lambda tensors, outputs=None: answer
    if "checks" in off:
        tensor = warmup_tensor(dataplane.model.card.inputs[0])
        dataplane._instances_tensor = lambda *args, **kwargs: tensor
    return served


def variant_server(model_dir: Path, without: str, port: int) -> AbstractContextManager[Server]:
    env = {"MODEL_DIR": str(model_dir), "COST_WITHOUT": without}
    return harness.shipped_server("aiship", "bench.cost:create_variant", 2, port, env)


def work_floor_server(model_dir: Path, port: int) -> AbstractContextManager[Server]:
    env = {"MODEL_DIR": str(model_dir)}
    return harness.shipped_server("work-floor", "bench.floor_app:create_work_app", 2, port, env)


def cpu_per_request(server: Server, connections: int, seconds: float) -> tuple[float, float]:
    """Worker CPU microseconds per request, and requests per second, over one wrk run."""
    requests = [(PREDICT_PATH, harness.predict_body())]
    harness.wrk(server.url(""), requests, connections, 2)
    before = _worker_cpu(server)
    result = harness.wrk(server.url(""), requests, connections, seconds)
    return (_worker_cpu(server) - before) / result.requests * 1e6, result.rps


def _worker_cpu(server: Server) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in server.workers())


def run(connections: int = 8, seconds: float = 6, rounds: int = 3) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        model_dir = harness.train_model(Path(tmp) / "model")
        starts = {
            "floor (constant answer)": lambda port: serving.floor_server(2, port),
            "floor reading the body and running the model": partial(work_floor_server, model_dir),
        }
        for label, without in VARIANTS.items():
            starts[label] = lambda port, w=without: variant_server(model_dir, w, port)
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label in starts}
        for _ in range(rounds):
            for label, start in starts.items():
                with start(harness.free_port()) as server:
                    samples[label].append(cpu_per_request(server, connections, seconds))
    lines = [
        f"wrk, {connections} connections, {seconds:.0f} s per run after 2 s of warm-up, "
        f"medians of {rounds} rounds; 2 granian workers each, as shipped.",
        "",
        "| server | worker CPU per request | req/s |",
        "| --- | ---: | ---: |",
    ]
    for label, runs in samples.items():
        cpu = statistics.median(c for c, _ in runs)
        rps = statistics.median(r for _, r in runs)
        lines.append(f"| {label} | {cpu:.0f} µs | {rps:.0f} |")
    return "\n".join(lines) + "\n"
