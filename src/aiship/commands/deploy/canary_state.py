"""The canary's state, kept on its Deployment in the cluster rather than only in the process
that judges it: the release it belongs to, the stable release it is judged against, the run
that started it, the steps judged with their verdicts, and until when it may live.

A deploy that is cancelled, killed or cut off leaves this behind; the next `deploy`, `rollback`
or `abort` reads it and removes the canary, or (the same release against the same stable, not
expired) resumes after its last judged step. A step counts as judged only once its verdict is
written here, so nothing is promoted on a step no run judged.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ...support.git import ci_run

STATE_ANNOTATION = "aiship.io/canary"
PASSED = "passed"
FAILED = "failed"


def run_label(env: Mapping[str, str] | None = None) -> str:
    """This run, as the state names it: the CI system's run and attempt (a re-run attempt is
    another run), or this machine and process outside CI."""
    env = os.environ if env is None else env
    run = ci_run(env)
    if run["system"] == "github":
        return f"github:{run['url']}/attempts/{env.get('GITHUB_RUN_ATTEMPT', '1')}"
    if run["system"] == "azure-pipelines":
        return f"azure-pipelines:{run['url']}&jobAttempt={env.get('SYSTEM_JOBATTEMPT', '1')}"
    return f"local:{socket.gethostname()}:{os.getpid()}"


def now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class JudgedStep:
    number: int  # 1-based, as the analysis file lists them
    weight: int
    verdict: str  # passed or failed
    line: str  # what the judge saw
    run: str
    at: str


@dataclass(frozen=True)
class CanaryState:
    image: str  # the canary's release, REPOSITORY@sha256:...
    stable: str  # stable's image when the canary started: what it is judged against
    run: str  # the run judging it now
    expires: str  # ISO 8601 UTC: past it, the next command removes the canary
    steps: tuple[JudgedStep, ...] = field(default=())

    @classmethod
    def start(cls, image: str, stable: str, lifetime: float) -> CanaryState:
        return cls(image, stable, run_label(), _stamp(now() + timedelta(seconds=lifetime)))

    @classmethod
    def of(cls, deployment: dict) -> CanaryState | None:
        """The state on a canary Deployment; None when it has none or it does not parse (a
        canary of an older aiship, or made by hand)."""
        text = deployment["metadata"].get("annotations", {}).get(STATE_ANNOTATION)
        try:
            data = json.loads(text or "")
            steps = tuple(JudgedStep(**step) for step in data.pop("steps"))
            state = cls(**data, steps=steps)
            state.expiry()
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return state

    def expiry(self) -> datetime:
        return datetime.fromisoformat(self.expires)

    def expired(self, moment: datetime | None = None) -> bool:
        return (moment or now()) >= self.expiry()

    @property
    def passed(self) -> tuple[JudgedStep, ...]:
        """The steps judged passed, in order, up to the first that was not."""
        passed: list[JudgedStep] = []
        for step in self.steps:
            if step.verdict != PASSED or step.number != len(passed) + 1:
                break
            passed.append(step)
        return tuple(passed)

    def resumed(self, lifetime: float) -> CanaryState:
        """Taken over by this run, with its own lifetime; the steps that passed kept."""
        return replace(
            self,
            run=run_label(),
            expires=_stamp(now() + timedelta(seconds=lifetime)),
            steps=self.passed,
        )

    def judged(self, number: int, weight: int, verdict: str, line: str) -> CanaryState:
        step = JudgedStep(number, weight, verdict, line, self.run, _stamp(now()))
        return replace(self, steps=(*self.steps, step))

    def annotation(self) -> dict[str, str]:
        return {STATE_ANNOTATION: json.dumps(asdict(self), sort_keys=True)}

    def describe(self) -> str:
        judged = ", ".join(f"step {s.number} {s.verdict}" for s in self.steps) or "no step judged"
        return f"canary of {self.image} started by {self.run} ({judged}; expires {self.expires})"
