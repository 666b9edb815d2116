"""`evaluate-model`: how good is the model in the image that CI built, measured on that image?

The built image runs as production runs it (read-only, non-root, on 127.0.0.1); the model's
golden set goes through its V2 endpoint in batches; the metrics are computed here (scoring.py)
and judged (gate.py) against manifests/quality.yaml, against the evaluation of the digest
production runs now (the tag deployed-production), and against the card's own claims. The
verdict is stored with the image as an *evaluation* record, which a production deploy requires.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from aiship.app.card import GOLDEN_FILE, CardError, ModelCard, verify_model_dir

from ...clients.records import EVALUATION, Ledger
from ...support.errors import ConfigError, IntegrityError, Rejected, StepError, Unavailable
from ...support.git import ci_run
from ...support.outputs import summarize
from ...support.paths import project_manifests
from ..command import REGISTRY_ENVIRONMENT, Command, RegistryImage, pinned_image, registry_flags
from .gate import Check, Thresholds, judge, load_thresholds
from .golden import GoldenRow, answers, batches, infer_request, read_golden
from .scoring import classification, overall, regression

log = logging.getLogger(__name__)

BASELINE = "production"  # the environment whose evaluation a new model must not fall behind
REQUEST_TIMEOUT = 60


@dataclass(frozen=True)
class Evaluation:
    image: str  # REPOSITORY@sha256:...
    model: str  # NAME VERSION
    metrics: dict[str, float]
    checks: tuple[Check, ...]
    baseline: str  # the production digest compared with, "" when none
    seconds: float

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def reason(self) -> str:
        """The first failed check's line, or what passed."""
        failed = [c.reason for c in self.checks if not c.passed]
        return failed[0] if failed else "every check passed"

    def outputs(self) -> dict[str, str]:
        """The verdict, and each overall metric (not the per-class ones) as metric_NAME."""
        metrics = overall(self.metrics)
        figures = {f"metric_{name}": f"{value:.4f}" for name, value in metrics.items()}
        return {
            "result": "passed" if self.passed else "failed",
            "reason": self.reason,
            "baseline": self.baseline,
            **figures,
        }

    def markdown(self) -> str:
        lines = [
            f"### Model evaluation: {'passed' if self.passed else 'FAILED'}",
            "",
            f"`{self.image}` ({self.model}), baseline: "
            + (f"`{self.baseline}` (production)" if self.baseline else "none (first release)")
            + f", measured in {self.seconds:.1f} s",
            "",
            "| metric | rule | measured | limit | |",
            "|---|---|---|---|---|",
        ]
        for check in self.checks:
            mark = "pass" if check.passed else "**FAIL**"
            lines.append(
                f"| {check.metric} | {check.rule} | {check.value:.4f} | {check.limit:g} | {mark} |"
            )
        return "\n".join(lines) + "\n"


def evaluate_model(
    ledger: Ledger,
    image: str,
    model_dir: Path,
    card: ModelCard,
    thresholds: Thresholds,
    *,
    config: Path | None = None,
) -> Evaluation:
    """Measure IMAGE's model on DIR's golden set (CARD is DIR's, verified by golden_card), judge
    it, record the verdict with the image; Rejected when a check failed (the record is written
    first)."""
    from ...clients.container import running_image

    started = time.monotonic()
    digest = image.rsplit("@", 1)[1]
    rows = read_golden(model_dir, card)
    log.info("evaluating %s (%s %s) on %d golden rows", image, card.name, card.version, len(rows))
    with running_image(image, config=config) as url:
        served = _served_model(url)
        if served.get("sha256") != card.sha256:
            raise IntegrityError(
                f"{image} serves model sha256 {served.get('sha256')}, but {model_dir} holds "
                f"{card.sha256}: evaluate the image with the model it was built from"
            )
        predicted = _predict(url, card, rows, thresholds.batch)
    metrics = _metrics(card, rows, predicted)
    baseline_digest, baseline = _baseline(ledger, digest)
    checks = judge(metrics, thresholds, baseline=baseline, claimed=card.metrics)
    evaluation = Evaluation(
        image=image,
        model=f"{card.name} {card.version}",
        metrics=metrics,
        checks=tuple(checks),
        baseline=baseline_digest,
        seconds=time.monotonic() - started,
    )
    _record(ledger, digest, card, evaluation)
    summarize(evaluation.markdown())
    for check in checks:
        log.info("%s %s", "pass" if check.passed else "FAIL", check.reason)
    if not evaluation.passed:
        raise Rejected(
            f"{image} fails the quality gate: {evaluation.reason}", outputs=evaluation.outputs()
        )
    return evaluation


def golden_card(model_dir: Path) -> ModelCard:
    """DIR's card, with model.onnx and the golden set verified against it."""
    try:
        card = verify_model_dir(Path(model_dir), golden=True)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    if card.golden is None:
        raise ConfigError(
            f"{Path(model_dir) / 'model.json'} names no golden set: publish the model with its "
            f"{GOLDEN_FILE} (model/README.md)"
        )
    return card


def _served_model(url: str) -> dict:
    response = requests.get(f"{url}/version", timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    return response.json().get("model", {})


def _predict(url: str, card: ModelCard, rows: list[GoldenRow], batch: int) -> list:
    endpoint = f"{url}/v2/models/{card.name}/infer"
    predicted: list = []
    with requests.Session() as http:
        for chunk in batches(rows, batch):
            try:
                response = http.post(
                    endpoint, json=infer_request(card, chunk), timeout=REQUEST_TIMEOUT
                )
            except requests.RequestException as exc:
                raise Unavailable(f"{endpoint} did not answer: {exc}") from None
            if response.status_code != 200:
                raise StepError(
                    f"{endpoint} answered {response.status_code} to golden rows "
                    f"{len(predicted) + 1}-{len(predicted) + len(chunk)}: {response.text[:200]}"
                )
            predicted.extend(answers(card, response.json(), len(chunk)))
    return predicted


def _metrics(card: ModelCard, rows: list[GoldenRow], predicted: list) -> dict[str, float]:
    targets = [row.target for row in rows]
    if card.labels is not None:
        return classification(targets, predicted, card.labels)
    return regression(targets, predicted)


def _baseline(ledger: Ledger, digest: str) -> tuple[str, dict[str, float] | None]:
    """What production runs (when not this very digest) and its newest passed evaluation's
    metrics; none before the first release or for an image evaluated before this gate."""
    running = ledger.runs(BASELINE)
    if not running or running == digest:
        log.info("no baseline: %s", "production runs nothing yet" if not running else "the same")
        return "", None
    passed = [r for r in ledger.read(running, EVALUATION) if r.payload.get("passed") is True]
    if not passed:
        log.warning("production's %s has no passed evaluation: no maxDrop checks", running)
        return running, None
    return running, passed[-1].payload.get("metrics", {})


def _record(ledger: Ledger, digest: str, card: ModelCard, evaluation: Evaluation) -> None:
    payload = {
        "image": evaluation.image,
        "digest": digest,
        "model": {"name": card.name, "version": card.version, "sha256": card.sha256},
        "golden": {"sha256": card.golden.sha256, "rows": card.golden.rows},
        "metrics": evaluation.metrics,
        "claimed": card.metrics,
        "baseline": evaluation.baseline,
        "checks": [check.to_dict() for check in evaluation.checks],
        "passed": evaluation.passed,
        "reason": evaluation.reason,
        "run": ci_run(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    ledger.write(digest, EVALUATION, payload)


# Command line


def _flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--image", required=True, help="REPOSITORY@sha256:... (the pushed image)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("build/model"),
        help="fetch-model's DEST: the card and golden set of the image's model "
        "(default: build/model)",
    )
    parser.add_argument(
        "--thresholds",
        type=Path,
        default=project_manifests() / "quality.yaml",
        help="the quality gate (default: manifests/quality.yaml)",
    )


@dataclass(frozen=True)
class EvaluationPlan:
    """The image and the thresholds; the model folder is fetch-model's, read at run time."""

    target: RegistryImage
    model_dir: Path
    thresholds: Thresholds

    def describe(self) -> str:
        image = self.target.image
        limits = ", ".join(sorted(self.thresholds.metrics))
        return (
            f"run {image.name}@{image.digest}, score the model in {self.model_dir} on its golden "
            f"set, judge {limits} and record the evaluation"
        )


def _plan(args: argparse.Namespace) -> EvaluationPlan:
    target = pinned_image(args, "the pushed image")
    return EvaluationPlan(target, args.model_dir, load_thresholds(args.thresholds))


def _run(plan: EvaluationPlan) -> Evaluation:
    from ...clients.docker import docker_config

    card = golden_card(plan.model_dir)  # before anything runs or logs in
    login, image = plan.target.login()
    with docker_config(login) as config:
        return evaluate_model(
            Ledger.of(login, image.name),
            f"{image.name}@{image.digest}",
            plan.model_dir,
            card,
            plan.thresholds,
            config=config,
        )


COMMANDS = (
    Command(
        "evaluate-model",
        help="score the image's model on its golden set, on the image; gate and record it",
        description="Run the image read-only on 127.0.0.1, send the golden set through its V2 "
        "endpoint, compute the metrics, judge them against the thresholds, production's "
        "evaluation and the card's claims, and record the evaluation with the image. Exit 10 "
        "when the model fails the gate.",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
