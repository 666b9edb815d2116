"""Canary skew: the smallest shift of the predicted-class mix that the canary analysis catches,
against the rows each side has served, and how often it cries wolf when nothing changed.

`python -m bench.canary_skew [--trials N] [--seed S] [--analysis FILE]` (a few seconds, no
servers). Stable's mix is the sample model's: model/train.py's classifier, converted to ONNX,
run by the app's OnnxModel on the digits test split that train.py holds out. Each trial draws N
rows per side from a mix (rows independent, as batch-1 requests from many clients) and asks
`judge` (src/aiship/commands/deploy/analysis.py) for its prediction-mix verdict; the thresholds are
the analysis file's, with minSamples set to the rows drawn. The canary is stable's mix with a
share s of its rows answered wrong, two ways:

- one class: the share s answered as stable's most frequent class (a model stuck on one answer;
  the most frequent class is the hardest one to see);
- shuffled labels: the share s answered one class up (0 -> 1, ..., 9 -> 0), a model whose
  label order went wrong.

A step of the release reads /metrics every `interval` and aborts at the first failed check, so
a step's false alarms are measured too: each of the file's steps, pause / interval reads of
cumulative counts, nothing changed, stable serving (100 - weight) / weight rows for each of the
canary's.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from aiship.commands.deploy.analysis import (
    Analysis,
    CanaryStep,
    PodMetrics,
    judge,
    load_analysis,
    psi,
)
from bench.repo import MANIFESTS, REPO_ROOT

SAMPLES = (100, 250, 500, 1000, 2500, 5000)
SKEWS = (0.05, 0.1, 0.15, 0.2, 0.3)
NULL_TRIALS = 10  # times the trials for s=0: false alarms are rare, and rare is the point
DETECTED = 0.95  # "caught": the check fails in at least this share of trials
OTHER = "other"  # the app's series for a class outside the labels: always there, always 0 here


def stable_mix() -> tuple[list[str], np.ndarray]:
    """The sample model's labels and its shares of predictions on the held-out digits."""
    sys.path.insert(0, str(REPO_ROOT / "model"))
    import train
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from aiship.app.model import OnnxModel

    images, digits = load_digits(return_X_y=True)
    # The split train.py holds out (its seed, its share, stratified).
    _, held_out = train_test_split(
        images.astype(np.float32), test_size=0.25, random_state=train.SEED, stratify=digits
    )
    with tempfile.TemporaryDirectory(prefix="bench-canary-skew-") as tmp:
        card = train.write_model(Path(tmp), name="digits", version="1.0.0")
        label = OnnxModel.load(Path(tmp)).predict({"input": held_out}, ["label"])["label"]
    counts = np.bincount(label, minlength=len(card.labels))
    return list(card.labels), counts / counts.sum()


def one_class(mix: np.ndarray, share: float) -> np.ndarray:
    stuck = np.zeros_like(mix)
    stuck[np.argmax(mix)] = 1.0
    return (1 - share) * mix + share * stuck


def shuffled_labels(mix: np.ndarray, share: float) -> np.ndarray:
    return (1 - share) * mix + share * np.roll(mix, 1)


def pods(labels: list[str], counts: np.ndarray) -> list[PodMetrics]:
    """One side's counters per trial, as parse() reads them off a pod: every class, and other."""
    return [
        PodMetrics(
            int(row.sum()), 0, (), {**dict(zip(labels, map(float, row), strict=True)), OTHER: 0.0}
        )
        for row in counts
    ]


def mix_fails(analysis: Analysis, canary: PodMetrics, stable: PodMetrics) -> bool:
    return judge(analysis, canary, stable)[-1].passed is False  # the last check: the mix


def alarm_rate(
    analysis: Analysis,
    labels: list[str],
    canary_mix: np.ndarray,
    stable_mix: np.ndarray,
    rows: int,
    trials: int,
    rng: np.random.Generator,
) -> float:
    """The share of trials in which judge fails the mix, ROWS per side."""
    analysis = replace(analysis, min_samples=rows)
    canary = pods(labels, rng.multinomial(rows, canary_mix, size=trials))
    stable = pods(labels, rng.multinomial(rows, stable_mix, size=trials))
    return sum(mix_fails(analysis, c, s) for c, s in zip(canary, stable, strict=True)) / trials


def smallest_caught(analysis, labels, mix, skew, rows, trials, rng) -> float | None:
    """The smallest share s (to 0.005) whose skew is caught in DETECTED of the trials; None
    when not even s=1 is."""
    low, high = 0.0, 1.0
    if alarm_rate(analysis, labels, skew(mix, high), mix, rows, trials, rng) < DETECTED:
        return None
    while high - low > 0.005:
        middle = (low + high) / 2
        caught = alarm_rate(analysis, labels, skew(mix, middle), mix, rows, trials, rng)
        low, high = (low, middle) if caught >= DETECTED else (middle, high)
    return high


def null_psi(labels, mix, rows: int, trials: int, rng) -> np.ndarray:
    """PSI between two draws of the same mix: what the threshold must stand above."""
    canary = pods(labels, rng.multinomial(rows, mix, size=trials))
    stable = pods(labels, rng.multinomial(rows, mix, size=trials))
    return np.array(
        [psi(c.predictions, s.predictions) for c, s in zip(canary, stable, strict=True)]
    )


def step_reads(analysis: Analysis, step: CanaryStep) -> int:
    """The reads of /metrics in a step that passes at its pause."""
    return max(1, round(step.pause / analysis.interval))


def step_alarm_rate(
    analysis: Analysis, labels, mix, step: CanaryStep, canary_rows_per_read: int, trials, rng
) -> float:
    """The share of STEPs (its reads of cumulative counts, nothing changed) in which some read
    fails the mix."""
    reads = step_reads(analysis, step)
    stable_rows_per_read = round(canary_rows_per_read * (100 - step.weight) / step.weight)
    alarms = 0
    for _ in range(trials):
        canary = rng.multinomial(canary_rows_per_read, mix, size=reads).cumsum(axis=0)
        stable = rng.multinomial(stable_rows_per_read, mix, size=reads).cumsum(axis=0)
        alarms += any(
            mix_fails(analysis, c, s)
            for c, s in zip(pods(labels, canary), pods(labels, stable), strict=True)
        )
    return alarms / trials


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def run(analysis: Analysis, trials: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    labels, mix = stable_mix()
    lines = [
        f"Stable's mix (the sample model on the {len(labels)} digits' held-out split): "
        + ", ".join(f"{name} {share:.1%}" for name, share in zip(labels, mix, strict=True)),
        f"Thresholds: maxPsi {analysis.max_psi}; {trials} trials per cell, "
        f"{NULL_TRIALS * trials} at s=0; seed {seed}.",
        "",
        "| rows per side | false alarms at s=0 | PSI at s=0, 99th / 99.9th pct | "
        + " | ".join(f"one class s={s:.0%}" for s in SKEWS)
        + " | smallest s caught (95 %), one class | shuffled labels, s=100 % |",
        "| ---: | ---: | ---: | " + "---: | " * len(SKEWS) + "---: | ---: |",
    ]
    for rows in SAMPLES:
        rate = alarm_rate(analysis, labels, mix, mix, rows, NULL_TRIALS * trials, rng)
        null = null_psi(labels, mix, rows, NULL_TRIALS * trials, rng)
        quantiles = np.quantile(null, [0.99, 0.999])
        caught = [
            alarm_rate(analysis, labels, one_class(mix, s), mix, rows, trials, rng) for s in SKEWS
        ]
        # Where nothing changed already fails often, "caught" means nothing.
        smallest = (
            smallest_caught(analysis, labels, mix, one_class, rows, trials, rng)
            if rate < 1 - DETECTED
            else None
        )
        shuffled = alarm_rate(analysis, labels, shuffled_labels(mix, 1.0), mix, rows, trials, rng)
        lines.append(
            f"| {rows} | {rate:.2%} | {quantiles[0]:.3f} / {quantiles[1]:.3f} | "
            + " | ".join(f"{c:.1%}" for c in caught)
            + f" | {percent(smallest)} | {shuffled:.1%} |"
        )
    lines += [
        "",
        f"The file's steps, nothing changed (minSamples {analysis.min_samples}, a read every "
        f"{analysis.interval:g} s):",
        "",
        "| step | reads | canary rows per read | canary rows at the last read | false alarms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for number, step in enumerate(analysis.steps, 1):
        reads = step_reads(analysis, step)
        for per_read in (analysis.min_samples // 4, analysis.min_samples):
            rate = step_alarm_rate(analysis, labels, mix, step, per_read, trials, rng)
            lines.append(
                f"| {number}: {step.weight} %, {step.pause:g} s | {reads} | {per_read} | "
                f"{per_read * reads} | {rate:.2%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.canary_skew", description=__doc__)
    parser.add_argument("--trials", type=int, default=1000, help="trials per cell (1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--analysis", type=Path, default=MANIFESTS / "analysis.yaml")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(load_analysis(args.analysis), args.trials, args.seed)
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n\n{report}")
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
