"""Canary analysis: is the canary as good as stable, judged from its pods' /metrics?

Pure: exposition text in, verdicts out. Reading the pods (through the API server's pod proxy),
shifting the replicas and promoting or aborting are the release's. The declared settings live in
manifests/analysis.yaml; bench/canary_skew.py measures what the prediction check catches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ...support.declared import read_declared
from ...support.errors import ConfigError, StepError

# What app/metrics.py exposes and app/rest.py routes; the tests read a real app's /metrics to
# hold both sides to these names.
PREDICTION_ROUTES = frozenset(
    {"/predict", "/v2/models/<name>/infer", "/v2/models/<name>/versions/<version>/infer"}
)
REQUEST_BUCKETS = "http_request_duration_seconds_bucket"
REQUEST_COUNT = "http_request_duration_seconds_count"
PREDICTIONS = "model_predictions_total"
QUANTILE = 0.99


def _number(description: str, kind: str = "number", **bounds: float) -> dict:
    return {"type": kind, "description": description, **bounds}


SECONDS = _number("seconds, a positive number", exclusiveMinimum=0)
COUNT = _number("an integer >= 1", "integer", minimum=1)


# Each "description" is what a valid value is: the fix an error message names.
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["steps", "interval", "timeout", "minRequests", "minSamples", "checks"],
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "description": "a list of {weight, pause}, one per step",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["weight", "pause"],
                "properties": {
                    "weight": _number(
                        "the canary's percent of the pods, an integer in 1..99",
                        "integer",
                        minimum=1,
                        maximum=99,
                    ),
                    "pause": SECONDS,
                },
            },
        },
        "interval": SECONDS,
        "timeout": SECONDS,
        "unhealthySeconds": SECONDS,
        "minRequests": COUNT,
        "minSamples": COUNT,
        "checks": {
            "type": "object",
            "additionalProperties": False,
            "required": ["errorRate", "latencyP99", "predictions"],
            "properties": {
                "errorRate": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["maxIncrease"],
                    "properties": {
                        "maxIncrease": _number("a share in 0..1", minimum=0, maximum=1),
                    },
                },
                "refusalRate": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["maxIncrease"],
                    "properties": {
                        "maxIncrease": _number("a share in 0..1", minimum=0, maximum=1),
                    },
                },
                "latencyP99": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["maxRatio", "slackSeconds"],
                    "properties": {
                        "maxRatio": _number("a number >= 1", minimum=1),
                        "slackSeconds": _number("seconds, a number >= 0", minimum=0),
                    },
                },
                "predictions": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["maxPsi"],
                    "properties": {"maxPsi": _number("a positive number", exclusiveMinimum=0)},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class CanaryStep:
    weight: int  # the canary's percent of the pods
    pause: float  # seconds the step is watched at least


@dataclass(frozen=True)
class Analysis:
    steps: tuple[CanaryStep, ...]
    interval: float
    timeout: float
    min_requests: int
    min_samples: int
    max_error_increase: float
    max_p99_ratio: float
    p99_slack_seconds: float
    max_psi: float
    max_refusal_increase: float = 0.05
    # How long the cluster may fail a step's reads (API server unreachable, a pod's metrics
    # unreadable, a canary pod not ready) before the step fails.
    unhealthy_seconds: float = 60.0


def load_analysis(path: Path) -> Analysis:
    """The declared analysis in PATH, validated; a ConfigError names the field and the fix."""
    data = read_declared(path, SCHEMA, "a canary analysis file (manifests/analysis.yaml)")
    steps = tuple(CanaryStep(s["weight"], float(s["pause"])) for s in data["steps"])
    for i in range(1, len(steps)):
        if steps[i].weight <= steps[i - 1].weight:
            raise ConfigError(
                f"{path}: steps[{i}].weight {steps[i].weight} is not above steps[{i - 1}].weight "
                f"{steps[i - 1].weight}: weights must increase step by step"
            )
    if data["timeout"] < sum(s.pause for s in steps):
        raise ConfigError(
            f"{path}: timeout {data['timeout']} is under the steps' pauses together "
            f"({sum(s.pause for s in steps):g} s): raise timeout or shorten the pauses"
        )
    checks = data["checks"]
    return Analysis(
        steps=steps,
        interval=float(data["interval"]),
        timeout=float(data["timeout"]),
        unhealthy_seconds=float(data.get("unhealthySeconds", 60)),
        min_requests=data["minRequests"],
        min_samples=data["minSamples"],
        max_error_increase=float(checks["errorRate"]["maxIncrease"]),
        max_p99_ratio=float(checks["latencyP99"]["maxRatio"]),
        p99_slack_seconds=float(checks["latencyP99"]["slackSeconds"]),
        max_psi=float(checks["predictions"]["maxPsi"]),
        max_refusal_increase=float(checks.get("refusalRate", {}).get("maxIncrease", 0.05)),
    )


@dataclass(frozen=True)
class PodMetrics:
    """One pod's counters for the prediction routes only (or their sum over pods)."""

    requests: int
    errors: int  # answers with status >= 500
    latency: tuple[tuple[float, float], ...]  # cumulative buckets (le, count), +Inf last
    predictions: Mapping[str, float] = field(default_factory=dict)  # class -> rows
    refused: int = 0  # answers with status 4xx: a canary that refuses what stable answers fails

    @classmethod
    def empty(cls) -> PodMetrics:
        return cls(0, 0, (), {})

    @classmethod
    def parse(cls, text: str) -> PodMetrics:
        """A pod's /metrics; a StepError says what in it cannot be read."""
        requests = errors = refused = 0.0
        buckets: dict[float, float] = {}
        predictions: dict[str, float] = {}
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = sample.labels
                    if sample.name == PREDICTIONS:
                        key = labels.get("class", "")
                        predictions[key] = predictions.get(key, 0.0) + sample.value
                    elif labels.get("route") not in PREDICTION_ROUTES:
                        continue
                    elif sample.name == REQUEST_COUNT:
                        requests += sample.value
                        status = int(labels.get("status", ""))
                        errors += sample.value if status >= 500 else 0
                        refused += sample.value if 400 <= status < 500 else 0
                    elif sample.name == REQUEST_BUCKETS:
                        le = float(labels.get("le", ""))
                        buckets[le] = buckets.get(le, 0.0) + sample.value
        except (ValueError, TypeError, IndexError) as exc:  # the parser's, int()'s and float()'s
            raise StepError(
                f"a pod's /metrics is not the service's Prometheus text ({exc}): is it the app's "
                "/metrics, whole?"
            ) from None
        if buckets and math.inf not in buckets:
            raise StepError(
                f'a pod\'s /metrics has {REQUEST_BUCKETS} without le="+Inf": is it whole?'
            )
        latency = tuple(sorted(buckets.items()))
        return cls(round(requests), round(errors), latency, predictions, round(refused))

    def since(self, baseline: PodMetrics | None) -> PodMetrics:
        """The increase from BASELINE; when any counter went down, the pod restarted and all of
        it counts from zero (one pod's counters reset together)."""
        if baseline is None or self._went_down_from(baseline):
            return self
        return PodMetrics(
            self.requests - baseline.requests,
            self.errors - baseline.errors,
            tuple((le, n - _cumulative(baseline.latency, le)) for le, n in self.latency),
            {c: n - baseline.predictions.get(c, 0.0) for c, n in self.predictions.items()},
            self.refused - baseline.refused,
        )

    def _went_down_from(self, baseline: PodMetrics) -> bool:
        return (
            self.requests < baseline.requests
            or self.errors < baseline.errors
            or self.refused < baseline.refused
            or any(n < _cumulative(baseline.latency, le) for le, n in self.latency)
            or any(self.predictions.get(c, 0.0) < n for c, n in baseline.predictions.items())
        )

    def __add__(self, other: PodMetrics) -> PodMetrics:
        bounds = sorted({le for le, _ in self.latency} | {le for le, _ in other.latency})
        classes = self.predictions.keys() | other.predictions.keys()
        return PodMetrics(
            self.requests + other.requests,
            self.errors + other.errors,
            tuple(
                (le, _cumulative(self.latency, le) + _cumulative(other.latency, le))
                for le in bounds
            ),
            {
                c: self.predictions.get(c, 0.0) + other.predictions.get(c, 0.0)
                for c in sorted(classes)
            },
            self.refused + other.refused,
        )

    @property
    def samples(self) -> float:
        """Rows predicted, over all classes."""
        return sum(self.predictions.values())


def _cumulative(latency: Iterable[tuple[float, float]], bound: float) -> float:
    """The count at or under BOUND: a bucket's own, or, for a bound the histogram does not
    have, the highest one below it (pods of the same image share their bounds)."""
    below = [n for le, n in latency if le <= bound]
    return below[-1] if below else 0.0


def p99(latency: Iterable[tuple[float, float]]) -> float | None:
    """The 99th percentile of a cumulative histogram, as Prometheus's histogram_quantile
    estimates it; None with no observations."""
    buckets = sorted(latency)
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return None
    counts: list[float] = []
    for _, n in buckets:  # as Prometheus does: a dip (float noise, a reset) is flattened
        counts.append(max(n, counts[-1]) if counts else n)
    total = counts[-1]
    if total <= 0:
        return None
    rank = QUANTILE * total
    b = next(i for i, n in enumerate(counts) if n >= rank or i == len(counts) - 1)
    if b == len(buckets) - 1:  # in the +Inf bucket: the highest finite bound is the answer
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, below = (buckets[b - 1][0], counts[b - 1]) if b > 0 else (0.0, 0.0)
    end, count = buckets[b][0], counts[b] - below
    return start + (end - start) * (rank - below) / count


# Half a row added to every class on both sides (Jeffreys' prior): a class one side never
# predicted weighs as half a row, not as a zero whose logarithm is infinite.
PSEUDO_COUNT = 0.5


def psi(canary: Mapping[str, float], stable: Mapping[str, float]) -> float:
    """Population stability index of the canary's class mix against stable's, over the union
    of their classes: sum of (c - s) * ln(c / s) over the classes' shares c and s."""
    classes = canary.keys() | stable.keys()
    if not classes:
        return 0.0
    smoothing = PSEUDO_COUNT * len(classes)
    canary_total = sum(canary.values()) + smoothing
    stable_total = sum(stable.values()) + smoothing
    index = 0.0
    for name in classes:
        c = (canary.get(name, 0.0) + PSEUDO_COUNT) / canary_total
        s = (stable.get(name, 0.0) + PSEUDO_COUNT) / stable_total
        index += (c - s) * math.log(c / s)
    return index


@dataclass(frozen=True)
class Check:
    """One comparison; passed is None while either side has too few samples to judge."""

    name: str
    passed: bool | None
    canary: float | None
    stable: float | None
    limit: str  # the rule, or what the check waits for

    def line(self) -> str:
        if self.passed is None or self.canary is None:
            return f"{self.name}: {self.limit}"
        versus = "" if self.stable is None else f" vs {self.stable:.3f}"
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.name} {self.canary:.3f}{versus} ({self.limit}) {verdict}"


def judge(analysis: Analysis, canary: PodMetrics, stable: PodMetrics) -> list[Check]:
    """Error rate, p99 latency and the prediction mix of the canary against stable, each
    judged once both sides have enough samples."""
    return [
        _error_rate(analysis, canary, stable),
        _refusal_rate(analysis, canary, stable),
        _latency(analysis, canary, stable),
        _prediction_mix(analysis, canary, stable),
    ]


def _waiting(name: str, need: int, what: str, canary: float, stable: float) -> Check:
    have = f"canary {canary:g}, stable {stable:g}"
    return Check(name, None, None, None, f"waiting for {need} {what} per side ({have})")


def _error_rate(analysis: Analysis, canary: PodMetrics, stable: PodMetrics) -> Check:
    return _share_increase(
        "error rate", analysis, canary, stable, lambda pod: pod.errors, analysis.max_error_increase
    )


def _refusal_rate(analysis: Analysis, canary: PodMetrics, stable: PodMetrics) -> Check:
    """The share of 4xx answers: the same requests refused by the canary and served by stable
    is a broken release (a changed schema, a stricter validation), not the clients' fault."""
    return _share_increase(
        "4xx rate", analysis, canary, stable, lambda pod: pod.refused, analysis.max_refusal_increase
    )


def _share_increase(
    name: str,
    analysis: Analysis,
    canary: PodMetrics,
    stable: PodMetrics,
    counted: Callable[[PodMetrics], int],
    most: float,
) -> Check:
    """The canary's share of requests COUNTED against stable's: at most MOST higher."""
    if min(canary.requests, stable.requests) < analysis.min_requests:
        return _waiting(name, analysis.min_requests, "requests", canary.requests, stable.requests)
    shares = counted(canary) / canary.requests, counted(stable) / stable.requests
    return Check(name, shares[0] - shares[1] <= most, *shares, f"max +{most:.3f}")


def _latency(analysis: Analysis, canary: PodMetrics, stable: PodMetrics) -> Check:
    name = "p99 latency (s)"
    times = p99(canary.latency), p99(stable.latency)
    if min(canary.requests, stable.requests) < analysis.min_requests or None in times:
        return _waiting(name, analysis.min_requests, "requests", canary.requests, stable.requests)
    tails = beyond_the_buckets(canary.latency), beyond_the_buckets(stable.latency)
    if tails[0] > 1 - QUANTILE:
        # The canary's p99 is past the last bound, where the histogram cannot say how far:
        # histogram_quantile's answer (that bound) would hide a 29 s tail behind 2.5 s. Judge
        # the share of requests out there instead, against stable's.
        limit = tails[1] * analysis.max_p99_ratio
        passed = tails[0] <= limit
        rule = f"share over {last_bound(canary.latency):g} s, max {limit:.3f}"
        return Check(name + " tail", passed, *tails, rule)
    limit = max(times[1] * analysis.max_p99_ratio, times[1] + analysis.p99_slack_seconds)
    return Check(name, times[0] <= limit, *times, f"max {limit:.3f}")


def last_bound(latency: Iterable[tuple[float, float]]) -> float:
    finite = [le for le, _ in latency if le != math.inf]
    return finite[-1] if finite else math.inf


def beyond_the_buckets(latency: Iterable[tuple[float, float]]) -> float:
    """The share of requests slower than the histogram's last finite bound."""
    buckets = sorted(latency)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return 0.0
    return max(0.0, total - _cumulative(buckets, last_bound(buckets))) / total


def _prediction_mix(analysis: Analysis, canary: PodMetrics, stable: PodMetrics) -> Check:
    name = "prediction mix (PSI)"
    # No class series on stable: not a classifier, or an image from before the counter; there
    # is nothing to compare, and waiting would only run into the timeout. A canary that counts
    # no classes where stable does has lost what the mix check looks at: it fails.
    if not stable.predictions:
        return Check(name, True, None, None, "not compared: stable counts no classes")
    if not canary.predictions:
        if canary.requests < analysis.min_requests:
            return _waiting(
                name, analysis.min_requests, "requests", canary.requests, stable.requests
            )
        return Check(name, False, None, None, "the canary counts no classes, stable does: FAILED")
    if min(canary.samples, stable.samples) < analysis.min_samples:
        return _waiting(name, analysis.min_samples, "rows", canary.samples, stable.samples)
    index = psi(canary.predictions, stable.predictions)
    return Check(name, index <= analysis.max_psi, index, None, f"max {analysis.max_psi:.3f}")
