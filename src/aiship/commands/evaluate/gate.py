"""The quality gate: the measured metrics against the repository's thresholds
(manifests/quality.yaml), against production's evaluation, and against what the card claims.

Pure: figures in, checks out. Like MLflow's MetricThreshold, a metric may have an absolute bound
(`min`, `max`) and a bound relative to the baseline (`maxDrop`: how much worse than production,
in the metric's own units, in its worse direction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ...support.declared import read_declared
from .scoring import higher_is_better, overall

BOUND = {"type": "number", "description": "a number"}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["metrics"],
    "properties": {
        "metrics": {
            "type": "object",
            "description": "an object of metric names (accuracy, min_recall, mae, ...) to bounds",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "min": BOUND,
                    "max": BOUND,
                    "maxDrop": {
                        "type": "number",
                        "minimum": 0,
                        "description": "how much worse than production it may be, a number >= 0",
                    },
                },
            },
        },
        "claimTolerance": {
            "type": "number",
            "minimum": 0,
            "description": "how far the card's claims may exceed the measured figures, >= 0",
        },
        "goldenSet": {
            "type": "string",
            "minLength": 1,
            "description": "the team's golden set (JSON Lines), scored for every candidate; "
            "a path relative to this file",
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "maximum": 4096,
            "description": "golden rows per inference request, 1-4096",
        },
    },
}
DEFAULT_CLAIM_TOLERANCE = 0.005
DEFAULT_BATCH = 64


@dataclass(frozen=True)
class Bounds:
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None


@dataclass(frozen=True)
class Thresholds:
    metrics: Mapping[str, Bounds]
    claim_tolerance: float = DEFAULT_CLAIM_TOLERANCE
    batch: int = DEFAULT_BATCH
    golden_set: Path | None = None  # the team's, scored for every candidate beside its own


@dataclass(frozen=True)
class Check:
    """One verdict: METRIC's VALUE against LIMIT, by RULE (min, max, maxDrop or claim), on the
    rows of GOLDEN (which golden set)."""

    metric: str
    rule: str
    value: float
    limit: float
    passed: bool
    reason: str  # the one line an error or a summary shows
    golden: str = ""

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "rule": self.rule,
            "value": self.value,
            "limit": self.limit,
            "passed": self.passed,
            "reason": self.reason,
            "golden": self.golden,
        }


def load_thresholds(path: Path) -> Thresholds:
    data = read_declared(path, SCHEMA, "a quality gate file (manifests/quality.yaml)")
    metrics = {
        name: Bounds(bounds.get("min"), bounds.get("max"), bounds.get("maxDrop"))
        for name, bounds in data["metrics"].items()
    }
    golden_set = data.get("goldenSet")
    return Thresholds(
        metrics,
        float(data.get("claimTolerance", DEFAULT_CLAIM_TOLERANCE)),
        int(data.get("batch", DEFAULT_BATCH)),
        Path(path).parent / golden_set if golden_set else None,
    )


def judge(
    measured: Mapping[str, float],
    thresholds: Thresholds,
    *,
    baseline: Mapping[str, float] | None = None,
    claimed: Mapping[str, float] | None = None,
    golden: str = "",
) -> list[Check]:
    """Every check the thresholds, the baseline (production measured on the same rows) and the
    card's claims call for, passed or not, on the rows of the golden set GOLDEN. A threshold on
    a metric the model (or, for maxDrop, production) does not have is a failed check, never a
    silent pass."""
    checks = _checks(measured, thresholds, baseline, claimed)
    if not golden:
        return checks
    return [replace(c, golden=golden, reason=f"on {golden}: {c.reason}") for c in checks]


def _checks(
    measured: Mapping[str, float],
    thresholds: Thresholds,
    baseline: Mapping[str, float] | None,
    claimed: Mapping[str, float] | None,
) -> list[Check]:
    checks = []
    for metric, bounds in thresholds.metrics.items():
        value = measured.get(metric)
        if value is None:
            known = ", ".join(sorted(overall(measured)))
            checks.append(
                Check(
                    metric,
                    "exists",
                    float("nan"),
                    float("nan"),
                    False,
                    f"{metric} is not measured for this model (measured: {known})",
                )
            )
            continue
        if bounds.min is not None:
            checks.append(_bound(metric, "min", value, bounds.min, value >= bounds.min))
        if bounds.max is not None:
            checks.append(_bound(metric, "max", value, bounds.max, value <= bounds.max))
        if bounds.max_drop is not None and baseline is not None:
            if metric in baseline:
                checks.append(_drop(metric, value, baseline[metric], bounds.max_drop))
            else:
                reason = f"production has no {metric} on these rows: nothing to hold maxDrop to"
                checks.append(Check(metric, "maxDrop", value, float("nan"), False, reason))
    for metric, claim in (claimed or {}).items():
        if metric in measured:
            checks.append(_claim(metric, measured[metric], claim, thresholds.claim_tolerance))
    return checks


def _bound(metric: str, rule: str, value: float, limit: float, passed: bool) -> Check:
    side = "below the minimum" if rule == "min" else "above the maximum"
    reason = f"{metric} {value:.4f} is {side} {limit:g}" if not passed else f"{metric} {value:.4f}"
    return Check(metric, rule, value, limit, passed, reason)


def _drop(metric: str, value: float, production: float, max_drop: float) -> Check:
    worse = production - value if higher_is_better(metric) else value - production
    limit = production - max_drop if higher_is_better(metric) else production + max_drop
    passed = worse <= max_drop + 1e-12
    reason = (
        f"{metric} {value:.4f} is worse than production's {production:.4f} by {worse:.4f}, "
        f"more than maxDrop {max_drop:g}"
        if not passed
        else f"{metric} {value:.4f} vs production's {production:.4f}"
    )
    return Check(metric, "maxDrop", value, limit, passed, reason)


def _claim(metric: str, value: float, claim: float, tolerance: float) -> Check:
    """The card may not claim better than measured by more than TOLERANCE."""
    overclaim = claim - value if higher_is_better(metric) else value - claim
    passed = overclaim <= tolerance + 1e-12
    reason = (
        f"the card claims {metric} {claim:g}, but the image measures {value:.4f}"
        if not passed
        else f"{metric} as claimed ({claim:g}, measured {value:.4f})"
    )
    return Check(metric, "claim", value, claim, passed, reason)
