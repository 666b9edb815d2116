"""Metrics computed from the model's answers and the golden set's targets: pure functions.

Classifiers: accuracy, the recall of each class (`recall/<label>`), their mean (`macro_recall`)
and the worst of them (`min_recall`). Regressors: `mae`, `rmse` and `r2`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# Metrics where a lower figure is the better one; every other metric is better higher.
LOWER_IS_BETTER = frozenset({"mae", "rmse"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def overall(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics of the whole golden set, without the per-class ones (`recall/<label>`)."""
    return {name: value for name, value in metrics.items() if "/" not in name}


def classification(
    targets: Sequence[str], answers: Sequence[str], labels: Sequence[str]
) -> dict[str, float]:
    """Accuracy and per-class recall over the classes that occur in TARGETS."""
    pairs = list(zip(targets, answers, strict=True))
    metrics = {"accuracy": sum(t == a for t, a in pairs) / len(pairs)}
    recalls = {}
    for label in labels:
        answered = [a for t, a in pairs if t == label]
        if answered:  # a class the golden set lacks has no recall, rather than a made-up one
            recalls[label] = sum(a == label for a in answered) / len(answered)
    metrics["macro_recall"] = sum(recalls.values()) / len(recalls)
    metrics["min_recall"] = min(recalls.values())
    metrics.update({f"recall/{label}": value for label, value in recalls.items()})
    return metrics


def regression(targets: Sequence[float], answers: Sequence[float]) -> dict[str, float]:
    errors = [a - t for t, a in zip(targets, answers, strict=True)]
    mean = sum(targets) / len(targets)
    spread = sum((t - mean) ** 2 for t in targets)
    squared = sum(e * e for e in errors)
    return {
        "mae": sum(abs(e) for e in errors) / len(errors),
        "rmse": math.sqrt(squared / len(errors)),
        "r2": 1 - squared / spread if spread else (1.0 if squared == 0 else 0.0),
    }
