"""What a run measures: the figures it collects (seconds per case, traffic, memory, the canary's
deploys, notes), a timed action, and the memory of a group of processes."""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from aiship.support.errors import RolledBack, StepError


@dataclass
class Figures:
    """Seconds per case, in the order they were first measured; notes on anything odd."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    traffic: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    memory: list[tuple[str, int, float, float]] = field(default_factory=list)
    canary: list[CanaryRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, case: str, value: float) -> None:
        self.seconds.setdefault(case, []).append(value)
        print(f"  {case}: {value:.1f} s", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class CanaryRun:
    """One deploy of the canary bench under traffic: what it gave, what the clients saw."""

    case: str
    seconds: float
    outcome: str  # promoted, aborted, deployed, or what went wrong
    checks: tuple[str, ...]  # the step lines; for an abort, the failing one last
    phases: tuple[tuple[str, float], ...]
    sent: int
    failed: int  # client-side failures through the Service
    canary_500s: int | None  # of them, the canary's own 500s (answers_5xx: expected)
    stable_5xx: int | None  # the stable pods' 5xx on their /metrics (an abort leaves them)

    @property
    def lost(self) -> int:
        return self.failed - (self.canary_500s or 0)

    @property
    def caught_by(self) -> str:
        """The failed checks of an abort's last line, or why else it ended."""
        if self.outcome != "aborted":
            return ""
        last = self.checks[-1] if self.checks else ""
        failed = [c for c in last.split(" stable: ", 1)[-1].split("; ") if c.endswith("FAILED")]
        step = last.split(": ", 1)[0]
        return f"{step}: {'; '.join(failed)}" if failed else last


def timed(figures: Figures, case: str, action: Callable[[], object], fails: bool) -> float:
    """Seconds ACTION took, recorded under CASE; a deploy that should fail must roll back."""
    started = time.perf_counter()
    outcome = "returned"
    try:
        action()
    except RolledBack:
        outcome = "rolled back"
    except StepError as exc:
        outcome = f"failed: {exc}"
    seconds = time.perf_counter() - started
    if outcome != ("rolled back" if fails else "returned"):
        figures.notes.append(f"{case}: {outcome} after {seconds:.1f} s (not counted)")
        print(f"  {case}: UNEXPECTED {outcome}", file=sys.stderr, flush=True)
        return seconds
    figures.add(case, seconds)
    return seconds


def rss_pss(pids: list[int]) -> tuple[float, float]:
    """RSS and PSS summed over PIDS, MiB (shared pages count in each process's RSS)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
    return rss / 2**20, pss / 2**20


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return True
        time.sleep(0.05)
    return False
