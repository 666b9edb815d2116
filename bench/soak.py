"""Soak: a long run at high concurrency against aiship; no errors, worker memory stays flat."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import harness
from .harness import INFER_PATH, PREDICT_PATH

MAX_GROWTH = 0.10


def worker_rss(server: harness.Server) -> dict[int, float]:
    return {p.pid: p.memory_info().rss / 2**20 for p in server.workers()}


def run(
    workers: int = 2, seconds: float = 60, connections: int = 32, warmup: float = 5
) -> tuple[bool, str]:
    """Alternate /predict and V2 infer for SECONDS; return (passed, Markdown report)."""
    requests = [(PREDICT_PATH, harness.predict_body()), (INFER_PATH, harness.infer_body())]
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        model_dir = harness.train_model(Path(tmp) / "model")
        with harness.our_server(model_dir, workers, harness.free_port()) as server:
            ready = worker_rss(server)
            harness.wrk(server.url(""), requests, connections, warmup, check_status=True)
            start, load_start = worker_rss(server), harness.load_average()
            result = harness.wrk(server.url(""), requests, connections, seconds, check_status=True)
            end, load_end = worker_rss(server), harness.load_average()
    growth = {pid: (end[pid] - start[pid]) / start[pid] for pid in start if pid in end}
    checks = {
        "no errors (socket errors and non-2xx)": result.errors == 0 and result.non2xx == 0,
        "no worker replaced": set(start) == set(end),
        f"worker RSS growth < {MAX_GROWTH:.0%}": all(g < MAX_GROWTH for g in growth.values()),
    }
    lines = [
        f"{workers} workers, {connections} connections, {seconds:.0f} s after a {warmup:.0f} s "
        "warm-up, /predict and V2 infer alternating.",
        f"Load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end.",
        "",
        "| requests | req/s | p50 ms | p99 ms | max ms | socket+HTTP errors | non-2xx |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {result.requests} | {result.rps:.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} "
        f"| {result.max_ms:.1f} | {result.errors} | {result.non2xx} |",
        "",
        "| worker pid | RSS MiB when ready | after warm-up | at the end | growth |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for pid in start:
        after = f"{end[pid]:.1f} | {growth[pid]:+.1%}" if pid in end else "gone | -"
        lines.append(f"| {pid} | {ready.get(pid, 0):.1f} | {start[pid]:.1f} | {after} |")
    lines += ["", *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items())]
    return all(checks.values()), "\n".join(lines) + "\n"
