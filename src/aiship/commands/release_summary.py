"""`release-summary`: what the production approval gate is asked to approve.

The digest and what it carries (its labels), its staging pass and CI's evaluation of its model
(records in the registry), and what production runs now, as a job summary for the reviewers and
as outputs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..support.outputs import summarize
from .command import (
    REGISTRY_ENVIRONMENT,
    Command,
    RegistryImage,
    kubeconfig_of,
    pinned_image,
    registry_flags,
)

if TYPE_CHECKING:
    from ..clients.registry import ImageRef, RegistryLogin


@dataclass(frozen=True)
class ReleaseSummary:
    image: str
    revision: str
    model_version: str
    model_sha256: str
    staging_pass: str  # "passed in NAMESPACE at TIME (RUN)", or "none"
    production_image: str  # "" when production runs nothing yet
    evaluation: str = "none"  # "passed: accuracy 0.9689, ... (every check passed)", or "none"

    def outputs(self) -> dict[str, str]:
        return {
            "image": self.image,
            "digest": self.image.rsplit("@", 1)[1],
            "staging_pass": self.staging_pass,
            "production_image": self.production_image,
            "evaluation": self.evaluation,
        }

    def markdown(self) -> str:
        rows = [
            ("image", f"`{self.image}`"),
            ("revision", self.revision or "?"),
            ("model", f"{self.model_version or '?'} (sha256 `{self.model_sha256[:12] or '?'}`)"),
            ("staging", self.staging_pass),
            ("quality gate", self.evaluation),
            (
                "production now",
                f"`{self.production_image}`" if self.production_image else "nothing",
            ),
        ]
        lines = ["### Release for approval", "", "| | |", "|---|---|"]
        return "\n".join([*lines, *(f"| {name} | {value} |" for name, value in rows)]) + "\n"


def release_summary(
    login: RegistryLogin,
    image: ImageRef,
    kubeconfig: Path,
    namespace: str,
    context: str | None = None,
) -> ReleaseSummary:
    """IMAGE (by digest) as the approval sees it, against what NAMESPACE runs now."""
    from ..clients.kubectl import Kubectl
    from ..clients.records import EVALUATION, Ledger
    from .deploy.kubernetes import check_access
    from .deploy.proof import STAGING_PASS
    from .deploy.rollout import APP, container_image
    from .image_tags import resolve_image

    resolved = resolve_image(login, image, image.digest)
    ledger = Ledger.of(login, resolved.image)
    passes = ledger.read(resolved.digest, STAGING_PASS)
    staging = "none"
    if passes:
        found = passes[-1]
        run = found.payload.get("run", {}).get("url") or "a local run"
        staging = f"passed in {found.payload.get('where', '?')} at {found.created} ({run})"
    evaluations = ledger.read(resolved.digest, EVALUATION)
    kubectl = Kubectl(kubeconfig, namespace, context)
    check_access(kubectl)
    current = kubectl.get("deployment", APP)
    summary = ReleaseSummary(
        image=resolved.image,
        revision=resolved.revision,
        model_version=resolved.model_version,
        model_sha256=resolved.model_sha256,
        staging_pass=staging,
        production_image=(container_image(current) or "") if current else "",
        evaluation=_evaluation(evaluations[-1].payload) if evaluations else "none",
    )
    summarize(summary.markdown())
    return summary


def _evaluation(payload: dict) -> str:
    """An evaluation record in one line: the verdict, the overall metrics, the reason."""
    verdict = "passed" if payload.get("passed") is True else "FAILED"
    from .evaluate.scoring import overall

    metrics = overall(payload.get("metrics", {}))
    figures = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    return f"{verdict}: {figures} ({payload.get('reason', '?')})"


def _flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--image", required=True, help="REPOSITORY@sha256:... to be approved")
    parser.add_argument("--kubeconfig", type=Path, help="production's cluster [KUBECONFIG]")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--namespace", required=True, help="production's namespace")


@dataclass(frozen=True)
class SummaryPlan:
    target: RegistryImage
    kubeconfig: Path
    namespace: str
    context: str | None = None

    def describe(self) -> str:
        return (
            f"summarize {self.target.image} and what namespace {self.namespace} runs, for the "
            "approval"
        )


def _plan(args: argparse.Namespace) -> SummaryPlan:
    target = pinned_image(args)
    return SummaryPlan(target, kubeconfig_of(args), args.namespace, args.context)


def _run(plan: SummaryPlan) -> ReleaseSummary:
    login, image = plan.target.login()
    return release_summary(login, image, plan.kubeconfig, plan.namespace, plan.context)


COMMANDS = (
    Command(
        "release-summary",
        help="what the production approval is asked to approve: digest, staging pass, production",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
