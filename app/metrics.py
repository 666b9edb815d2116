"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by `python -m app serve`, in app/__main__.py) each
worker writes its samples to files and /metrics aggregates them; otherwise the app's own registry
is served.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .card import ModelCard

# Methods are label values: anything else a client sends is counted as "other", so that no client
# can grow the number of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's metrics, registered in a registry of its own (no global state)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, card: ModelCard):
        self.registry = CollectorRegistry()
        # Its _count is the number of requests, by status too: no separate counter to write.
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "model_inference_duration_seconds",
            "Time spent in onnxruntime per batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "model_inference_rows",
            "Rows (batch items) run through the model",
            registry=self.registry,
        )
        info = Gauge(
            "model_info",
            "The model this server runs",
            ["name", "version", "sha256"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        info.labels(card.name, card.version, card.sha256).set(1)
        # Labelled series by (method, route, status): looking a series up through labels() on
        # every request costs more than writing the sample.
        self._series: dict[tuple[str, str, int], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in METHODS else "other", route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self.latency.labels(key[0], route, str(status))
        series.observe(seconds)

    def observe_inference(self, seconds: float, rows: int) -> None:
        self.inference.observe(seconds)
        self.rows.inc(rows)

    def exposition(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
