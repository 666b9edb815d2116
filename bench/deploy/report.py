"""The report: the tables in Markdown, and the machine and its load for the header."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
from pathlib import Path

import psutil

from .canary import CANDIDATES, PROMOTED, ROLLING, aborted
from .kubernetes import FAILURE_KINDS
from .measure import CanaryRun, Figures


def stats(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{statistics.median(values):.1f} | {low:.1f} | {high:.1f} | {len(values)}"


def report(figures: Figures) -> str:
    s = figures.seconds
    out = [
        "| case | median s | min s | max s | n | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(case: str, peer: str | None, peer_name: str) -> None:
        if case not in s:
            return
        ratio = ""
        if peer and peer in s:
            ratio = f"{statistics.median(s[case]) / statistics.median(s[peer]):.1f}x {peer_name}"
        out.append(f"| {case} | {stats(s[case])} | {ratio} |")

    for case in (
        "cluster up, cold (node Ready)",
        "cluster up, warm (already running)",
        "cluster down (one app pod running)",
        "cluster down (three production pods running)",
    ):
        row(case, None, "")
    floor = "docker run until ready (floor)"
    row(floor, None, "")
    for case in (
        "kubernetes: update (staging, smoke test included)",
        "kubernetes: first deploy, cold image pull",
        "kubernetes: first deploy, image on the node",
        "swarm: update (smoke test included)",
    ):
        row(case, floor, "floor")
    for kind in FAILURE_KINDS:
        peer = f"swarm: failed update ({kind}) to previous serving"
        row(f"kubernetes: failed rollout ({kind}) to previous serving", peer, "swarm")
    for kind in ("bad_model", "crashing"):
        row(f"swarm: failed update ({kind}) to previous serving", None, "")
    for case in s:
        if case.startswith("kubernetes: production"):
            row(case, None, "")
    row(ROLLING, None, "")
    for case in (PROMOTED, *map(aborted, CANDIDATES)):
        row(case, ROLLING, "rolling")
    listed = {line.split(" | ")[0][2:] for line in out}
    out += [f"| {case} | {stats(v)} | |" for case, v in s.items() if case not in listed]

    if figures.traffic:
        out += [
            "",
            "| during | rollouts | requests sent | failed | rollout s, median |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for case, runs in figures.traffic.items():
            sent, failed = sum(r[0] for r in runs), sum(r[1] for r in runs)
            median = statistics.median(r[2] for r in runs)
            out.append(f"| {case} | {len(runs)} | {sent} | {failed} | {median:.1f} |")
    if figures.canary:
        out += ["", *canary_report(figures.canary, s.get(ROLLING))]
    if figures.memory:
        out += [
            "",
            "| process group | processes | RSS MiB | PSS MiB |",
            "| --- | ---: | ---: | ---: |",
        ]
        for what, count, rss, pss in figures.memory:
            out.append(f"| {what} | {count} | {rss:.0f} | {pss:.0f} |")
    if figures.notes:
        out += ["", "Notes:", *(f"- {note}" for note in figures.notes)]
    return "\n".join(out)


def canary_report(runs: list[CanaryRun], rolling: list[float] | None) -> list[str]:
    """Each canary-bench deploy: its time over the rolling peer's median, how it ended, which
    check caught it, what the clients lost; then where its time went, and the step lines."""
    peer = statistics.median(rolling) if rolling else None
    out = [
        "| deploy under traffic | s | / rolling | result | caught by | requests sent | "
        "client failures | canary's own 500s | stable pods' 5xx | lost |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for one in runs:
        ratio = f"{one.seconds / peer:.1f}x" if peer else ""
        own = "-" if one.canary_500s is None else str(one.canary_500s)
        stable = "-" if one.stable_5xx is None else str(one.stable_5xx)
        out.append(
            f"| {one.case} | {one.seconds:.1f} | {ratio} | {one.outcome} | {one.caught_by} | "
            f"{one.sent} | {one.failed} | {own} | {stable} | {one.lost} |"
        )
    out += ["", "| deploy | where the time went (s) |", "| --- | --- |"]
    for one in runs:
        spent = "; ".join(f"{what} {seconds:.1f}" for what, seconds in one.phases)
        out.append(f"| {one.case} | {spent} |")
    out += ["", "Step lines:"]
    for one in runs:
        out += [f"- {one.case}: {line}" for line in one.checks]
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{socket.gethostname()}: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
