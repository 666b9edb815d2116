"""Canary releases, simulated read by read through the real judge: how often a release with
nothing changed is aborted (A/A false aborts, per release), and how often a bad one is caught.

`python -m bench.canary_release [--releases N] [--seed S] [--rps R] [--analysis FILE]` (a minute
or so, no servers). Each release walks the analysis file's steps: at each `interval` every pod
of each side is read, its counters pass through the canary's own `Tally` and `judge`
(src/aiship/commands/deploy/), and the release aborts at the first failed check, as
`watch_step` does; it passes a step once the pause has gone by with every check passing.

Traffic is RPS requests a second through the Service, each a batch of 16 rows, shared between
the sides by the step's weight. Stable's rows come from a class mix over K classes (10, 30 or
100; shares falling off as 1/rank), with a share of the batches all of one class (clients that
send a batch of like rows). Latency is log-normal around 5 ms with a slow tail (0.5 % of requests
at about 300 ms), read into the app's own histogram buckets. The baseline error rate is 0.1 % or
1 %, the 4xx rate 1 %.

Bad canaries: 3x the error rate at a 0.3 % baseline; p99 1.5x (every request 1.5x slower); a
5-point shift of the rows to one class; 400 to every request.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiship.app.metrics import LATENCY_BUCKETS
from aiship.commands.deploy.analysis import Analysis, PodMetrics, judge, load_analysis
from aiship.commands.deploy.canary import Scrape, Tally
from bench.repo import MANIFESTS

ROWS_PER_REQUEST = 16
BOUNDS = (*LATENCY_BUCKETS, math.inf)


@dataclass(frozen=True)
class Traffic:
    """What one side serves, per request: its error and 4xx shares, latency and class mix."""

    error_rate: float = 0.001
    refusal_rate: float = 0.01
    slowdown: float = 1.0  # every request's time multiplied by this
    classes: int = 10
    one_class_batches: float = 0.3  # share of batches that are all of one class
    shift: float = 0.0  # share of rows moved to the most frequent class
    answers_400: bool = False

    def mix(self) -> np.ndarray:
        shares = 1.0 / np.arange(1, self.classes + 1)
        shares /= shares.sum()
        if self.shift:
            shares = shares * (1 - self.shift)
            shares[0] += self.shift
        return shares


def serve(traffic: Traffic, requests: int, rng: np.random.Generator) -> PodMetrics:
    """The counters REQUESTS requests add on a pod."""
    if requests == 0:
        return PodMetrics.empty()
    refused = requests if traffic.answers_400 else int(rng.binomial(requests, traffic.refusal_rate))
    errors = int(rng.binomial(requests - refused, traffic.error_rate))
    seconds = rng.lognormal(math.log(0.005), 0.5, requests)
    slow = rng.random(requests) < 0.005
    seconds[slow] = rng.lognormal(math.log(0.3), 0.3, int(slow.sum()))
    seconds *= traffic.slowdown
    counts = np.searchsorted(np.array(BOUNDS), seconds, side="left")
    cumulative = np.cumsum(np.bincount(counts, minlength=len(BOUNDS)))
    latency = tuple((bound, float(n)) for bound, n in zip(BOUNDS, cumulative, strict=True))
    answered = requests - refused - errors
    rows = np.zeros(traffic.classes)
    if answered:
        mix = traffic.mix()
        batch_classes = rng.choice(traffic.classes, size=answered, p=mix)
        alike = rng.random(answered) < traffic.one_class_batches
        rows += np.bincount(batch_classes[alike], minlength=traffic.classes) * ROWS_PER_REQUEST
        mixed = rng.multinomial((~alike).sum() * ROWS_PER_REQUEST, mix)
        rows += mixed
    predictions = {str(c): float(n) for c, n in enumerate(rows)}
    return PodMetrics(requests, errors, latency, predictions, refused)


def release(
    analysis: Analysis, stable: Traffic, canary: Traffic, rps: float, rng: np.random.Generator
) -> str | None:
    """None when the release is promoted; else the check that aborted it."""
    for step in analysis.steps:
        totals = {"canary": PodMetrics.empty(), "stable": PodMetrics.empty()}
        tally = Tally.starting(read(totals))
        seconds = 0.0
        while True:
            seconds += analysis.interval
            served = rng.poisson(rps * analysis.interval)
            to_canary = int(rng.binomial(served, step.weight / 100))
            for side, traffic, requests in (
                ("canary", canary, to_canary),
                ("stable", stable, served - to_canary),
            ):
                totals[side] = totals[side] + serve(traffic, requests, rng)
            checks = judge(analysis, *tally.add(read(totals)).sides())
            failed = [check.name for check in checks if check.passed is False]
            if failed:
                return failed[0]
            if seconds >= step.pause and all(check.passed for check in checks):
                break
            if seconds >= analysis.timeout:
                return "time limit"
    return None


def read(totals: dict[str, PodMetrics]) -> Scrape:
    """A read of one pod a side holding TOTALS."""
    return Scrape({f"{side}-0": (side, metrics) for side, metrics in totals.items()})


def outcomes(analysis, stable, canary, rps, releases, rng) -> Counter:
    """How RELEASES releases ended: None (promoted) or the check that aborted each."""
    return Counter(release(analysis, stable, canary, rps, rng) for _ in range(releases))


CASES = {
    # name: (stable, canary), the canary's way of being bad (or not)
    "A/A, 10 classes, 0.1 % errors": (Traffic(), Traffic()),
    "A/A, 30 classes, 0.1 % errors": (Traffic(classes=30), Traffic(classes=30)),
    "A/A, 100 classes, 0.1 % errors": (Traffic(classes=100), Traffic(classes=100)),
    "A/A, 10 classes, 1 % errors": (Traffic(error_rate=0.01), Traffic(error_rate=0.01)),
    "3x errors at 0.3 %": (Traffic(error_rate=0.003), Traffic(error_rate=0.009)),
    "1.5x slower (p99 1.5x)": (Traffic(), Traffic(slowdown=1.5)),
    "5 points to one class": (Traffic(), Traffic(shift=0.05)),
    "400 to everything": (Traffic(), Traffic(answers_400=True)),
}


def run(analysis: Analysis, releases: int, rps: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = [
        f"{releases} releases per case, {rps:g} requests/s of {ROWS_PER_REQUEST} rows, steps "
        + ", ".join(f"{s.weight} % for {s.pause:g} s" for s in analysis.steps)
        + f", reads every {analysis.interval:g} s",
        "",
        "| case | aborted | target | aborted by (releases) |",
        "|---|---:|---|---|",
    ]
    for name, (stable, canary) in CASES.items():
        ended = outcomes(analysis, stable, canary, rps, releases, rng)
        aborted = 1 - ended[None] / releases
        target = "<= 1 %" if name.startswith("A/A") else ">= 95 %"
        by = ", ".join(f"{check} {n}" for check, n in ended.most_common() if check is not None)
        lines.append(f"| {name} | {aborted:.1%} | {target} | {by} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.canary_release", description=__doc__)
    parser.add_argument("--releases", type=int, default=200, help="releases per case (200)")
    parser.add_argument("--rps", type=float, default=20.0, help="requests a second (20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--analysis", type=Path, default=MANIFESTS / "analysis.yaml")
    args = parser.parse_args(argv)
    analysis = load_analysis(args.analysis)
    print(run(analysis, args.releases, args.rps, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
