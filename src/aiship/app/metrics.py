"""Prometheus metrics, correct across the server's worker processes.

Under `python -m aiship.app serve` (PROMETHEUS_MULTIPROC_DIR set in server.py) each worker writes
its samples to files and /metrics aggregates them; otherwise the app's own registry is served. A
dead worker's files stay, so its counts stay in the sums, as counters must; no gauge is
live-mode, so there is nothing of a dead worker to mark dead.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping

import numpy as np
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
# A predicted class outside the card's labels: the label values stay the card's, plus this one.
OTHER_CLASS = "other"


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
        self._predictions = PredictionCounter.for_card(card, self.registry)
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

    def observe_predictions(self, outputs: Mapping[str, np.ndarray]) -> None:
        if self._predictions is not None:
            self._predictions.observe(outputs)

    def exposition(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            # prometheus_client leaves this constructor unannotated
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class PredictionCounter:
    """Rows predicted per class, the canary analysis's view of what a model answers.

    A row's class is the integer label output read as an index into the card's labels, or the
    argmax of the scores output when the client did not ask for the label.
    """

    def __init__(
        self,
        labels: tuple[str, ...],
        label_output: str | None,
        scores_output: str | None,
        registry: CollectorRegistry,
    ):
        counter = Counter(
            "model_predictions",
            "Rows predicted, by class (the model card's labels; 'other' outside them)",
            ["class"],
            registry=registry,
        )
        # Every series made up front: a class never predicted yet still reads 0, and a request
        # only indexes a list.
        self._children = [counter.labels(label) for label in labels]
        self._children.append(counter.labels(OTHER_CLASS))
        self._label_output = label_output
        self._scores_output = scores_output

    @classmethod
    def for_card(cls, card: ModelCard, registry: CollectorRegistry) -> PredictionCounter | None:
        """The counter for a classifier (a card with labels whose outputs carry a class)."""
        label, scores = card.class_outputs()
        if not card.labels or (label is None and scores is None):
            return None
        return cls(card.labels, label, scores, registry)

    def observe(self, outputs: Mapping[str, np.ndarray]) -> None:
        label, scores_output = self._label_output, self._scores_output
        if label is not None and label in outputs:
            classes = np.asarray(outputs[label]).reshape(-1)
        elif scores_output is not None and scores_output in outputs:
            scores = np.asarray(outputs[scores_output])
            classes = scores.reshape(len(scores), -1).argmax(axis=1)
        else:
            return  # the client asked for neither output
        # A Counter, not numpy: at the batch sizes served, numpy's per-call cost outweighs the
        # loop (bench/README.md, "The app's own cost, second round").
        other = len(self._children) - 1
        for index, rows in collections.Counter(classes.tolist()).items():
            self._children[index if 0 <= index < other else other].inc(rows)
