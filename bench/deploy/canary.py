"""The production canary: bad candidates to aborted, v2 to promoted, against a plain rolling
update of the same release under the same traffic; where each deploy's time went."""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from aiship.clients.kubectl import Kubectl
from aiship.commands.deploy.analysis import Analysis, load_analysis
from aiship.commands.deploy.canary import TRACK, scrape
from aiship.commands.deploy.release import Release
from aiship.local.registry_server import LocalRegistry
from aiship.local.traffic import digits_rows
from aiship.support.errors import RolledBack, StepError
from bench.repo import MANIFESTS

from .images import Images
from .kubernetes import Cluster
from .measure import CanaryRun, Figures, timed

CANDIDATES = ("answers_5xx", "slow", "skewed")  # the canary's bad candidates
PROMOTED = "canary: v1 -> v2 to promoted"
ROLLING = "canary peer: rolling update v1 -> v2, no analysis"
STABLE = f"{TRACK}=stable"
# A step's line (canary.py's watch_step): its number, and the seconds it was watched.
STEP_LINE = re.compile(r"canary step (\d+)/\d+: .*?, (\d+) s, requests ")


def aborted(kind: str) -> str:
    return f"canary: {kind} to aborted"


class DeployLog(logging.Handler):
    """The deploy step's INFO lines with their times: where the canary's time went."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.created, record.getMessage()))


def phases(started: float, lines: list[tuple[float, str]], ended: float) -> list[tuple[str, float]]:
    """The deploy's time from STARTED to ENDED (epoch seconds), cut at its step lines and at
    stable's apply: the time before each step's watch (the checks, the canary's pods coming up,
    the smoke test at step 1), the watch (its own whole seconds), stable's rolling update with
    its smoke test (a canary's promote), and the rest (the canary removed)."""
    out, mark = [], started
    for at, text in lines:
        step = STEP_LINE.search(text)
        if step:
            number, watched = step[1], float(step[2])
            before = "checks, canary pod up, smoke test" if number == "1" else "canary pods up"
            out.append((f"step {number}: {before}", at - watched - mark))
            out.append((f"step {number}: watched", watched))
            mark = at
        elif text.startswith("applying "):
            out.append(("to stable's apply", at - mark))
            mark = at
        elif text.startswith("deployment/") and " runs " in text:
            out.append(("stable's rolling update, smoke test", at - mark))
            mark = at
    out.append(("the rest", ended - mark))
    return out


def paced(analysis: Analysis, pause: float) -> Analysis:
    """The shipped analysis with each step watched PAUSE seconds, as the tests run it."""
    return replace(analysis, steps=tuple(replace(step, pause=pause) for step in analysis.steps))


def canary_case(
    cluster: Cluster,
    namespace: str,
    case: str,
    release: Release,
    analysis: Analysis | None,
    expect: str,
    figures: Figures,
    own_500s: bool = False,
) -> None:
    """Deploy RELEASE (with ANALYSIS: a canary) under digits traffic, 16 rows a request, through
    the Service; its time, what it ended with, what the clients and stable's pods saw. OWN_500S:
    the candidate answers 500 by design, so the 500s that stable's pods did not answer are its."""
    kubectl = Kubectl(cluster.kubeconfig, namespace)
    cluster.settle(namespace, pods=3)
    stable_before = scrape(kubectl, STABLE)
    handler, logger = DeployLog(), logging.getLogger("aiship.commands.deploy")
    logger.addHandler(handler)
    checks: tuple[str, ...] = ()
    try:
        with cluster.traffic(namespace, rows=digits_rows(), batch_size=16) as traffic:
            time.sleep(1)  # the loop runs before the decision
            started, wall = time.perf_counter(), time.time()
            try:
                result = cluster.deploy(release, namespace, overlay="production", canary=analysis)
                outcome, checks = result.result, result.checks
            except RolledBack as exc:
                aborts = exc.outputs.get("result") == "aborted"
                outcome = "aborted" if aborts else f"rolled back: {exc}"
                checks = tuple(exc.outputs.get("checks", ()))
            except StepError as exc:
                outcome = f"failed: {exc}"
            seconds, ended = time.perf_counter() - started, time.time()
            time.sleep(1)
    finally:
        logger.removeHandler(handler)
    lines = handler.lines + ([(ended, checks[-1])] if outcome == "aborted" and checks else [])
    stable_5xx = canary_500s = None
    if outcome == "aborted":  # stable's pods ran through it untouched: what did they answer?
        _, stable = scrape(kubectl, STABLE).sides(stable_before)
        stable_5xx = stable.errors
        if own_500s:
            served_500 = sum(1 for failure in traffic.failures if failure.startswith("500 "))
            canary_500s = max(0, served_500 - stable_5xx)
    measured = CanaryRun(
        case,
        seconds,
        outcome,
        tuple(checks),
        tuple(phases(wall, lines, ended)),
        traffic.total,
        len(traffic.failures),
        canary_500s,
        stable_5xx,
    )
    figures.canary.append(measured)
    if outcome == expect:
        figures.add(case, seconds)
    else:
        figures.notes.append(f"{case}: {outcome} after {seconds:.1f} s, not {expect} (not counted)")
        print(f"  {case}: UNEXPECTED {outcome}", file=sys.stderr, flush=True)
    if measured.lost:
        figures.notes.append(f"{case}: {measured.lost} requests lost, e.g. {traffic.failures[:3]}")


def bench_canary(
    work: Path,
    registry: LocalRegistry,
    images: Images,
    rounds: int,
    pause: float,
    figures: Figures,
) -> None:
    """Production (three stable pods) on a cluster of its own, v1 stable before each case: the
    bad candidates to aborted, v2 to promoted, and the rolling update of v1 -> v2 as the peer."""
    analysis = paced(load_analysis(MANIFESTS / "analysis.yaml"), pause)
    cluster = Cluster(work / "canary", registry)
    try:
        cluster.up()
        cluster.pull([images.v1, images.v2, *(images.release(kind) for kind in CANDIDATES)])
        production = cluster.namespace()
        cluster.deploy(images.v1, production, overlay="production")
        for _ in range(rounds):
            for kind in CANDIDATES:
                bad, own_500s = images.release(kind), kind == "answers_5xx"
                case = aborted(kind)
                canary_case(cluster, production, case, bad, analysis, "aborted", figures, own_500s)
            canary_case(cluster, production, PROMOTED, images.v2, analysis, "promoted", figures)
            cluster.deploy(images.v1, production, overlay="production")
            canary_case(cluster, production, ROLLING, images.v2, None, "deployed", figures)
            cluster.deploy(images.v1, production, overlay="production")
        cluster.drop(production)
    finally:
        timed(figures, "cluster down (canary run)", cluster.down, fails=False)
