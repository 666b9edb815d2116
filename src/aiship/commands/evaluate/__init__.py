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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from aiship.app.card import GOLDEN_FILE, CardError, ModelCard, verify_model_dir

from ...clients.records import EVALUATION, Ledger
from ...support.errors import (
    ConfigError,
    IntegrityError,
    Rejected,
    StepError,
    Unavailable,
    Unproven,
)
from ...support.git import ci_run
from ...support.outputs import summarize
from ...support.paths import project_manifests
from ..command import REGISTRY_ENVIRONMENT, Command, RegistryImage, pinned_image, registry_flags
from .gate import Check, Thresholds, judge, load_thresholds
from .golden import GoldenRow, GoldenText, answers, batches, infer_request, parse_golden
from .scoring import classification, overall, regression

log = logging.getLogger(__name__)

BASELINE = "production"  # the environment whose evaluation a new model must not fall behind
REQUEST_TIMEOUT = 60


@dataclass(frozen=True)
class Score:
    """Both models measured on one golden set's rows: the candidate, and production when there
    is a baseline."""

    golden: str  # which set: its own, production's, the team's
    sha256: str
    rows: int
    metrics: dict[str, float]
    production: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return {
            "golden": self.golden,
            "sha256": self.sha256,
            "rows": self.rows,
            "metrics": self.metrics,
            "production": self.production,
        }

    def line(self) -> str:
        figures = ", ".join(
            f"{name} {value:.4f}"
            + (
                f" (production {self.production[name]:.4f})"
                if name in (self.production or {})
                else ""
            )
            for name, value in overall(self.metrics).items()
        )
        return f"{self.golden} (sha256 {self.sha256[:12]}, {self.rows} rows): {figures}"


@dataclass(frozen=True)
class Baseline:
    """What the candidate is compared with: the image production runs, its model's card and its
    golden set, from its newest passed evaluation."""

    image: str  # REPOSITORY@sha256:...
    card: ModelCard
    golden: GoldenText


@dataclass(frozen=True)
class Evaluation:
    image: str  # REPOSITORY@sha256:...
    model: str  # NAME VERSION
    metrics: dict[str, float]  # on its own golden set
    checks: tuple[Check, ...]
    baseline: str  # the production digest compared with, "" when none
    seconds: float
    scores: tuple[Score, ...] = ()  # every golden set's figures, its own first
    why_no_baseline: str = ""  # first release, production runs this image, or --no-baseline

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
            + (
                f"`{self.baseline}` (production)"
                if self.baseline
                else f"none ({self.why_no_baseline})"
            )
            + f", measured in {self.seconds:.1f} s",
            "",
            *(f"- {score.line()}" for score in self.scores),
            "",
            "| golden set | metric | rule | measured | limit | |",
            "|---|---|---|---|---|---|",
        ]
        for check in self.checks:
            mark = "pass" if check.passed else "**FAIL**"
            lines.append(
                f"| {check.golden} | {check.metric} | {check.rule} | {check.value:.4f} "
                f"| {check.limit:g} | {mark} |"
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
    no_baseline: bool = False,
) -> Evaluation:
    """Measure IMAGE's model (CARD is DIR's, verified by golden_card) on its own golden set, the
    team's (when the thresholds name one) and production's, and production's image on the same
    rows; judge it; record the verdict with the image. Rejected when a check failed (the record
    is written first); Unproven, before anything runs, when production cannot be compared with
    and NO_BASELINE is not given."""
    from ...clients.container import running_image

    started = time.monotonic()
    digest = image.rsplit("@", 1)[1]
    own = GoldenText("its own", (Path(model_dir) / GOLDEN_FILE).read_bytes(), card.golden.rows)
    baseline, why_not = _baseline(ledger, image, no_baseline)
    sets = _distinct([own, *_team_set(thresholds), *([baseline.golden] if baseline else [])])
    log.info("evaluating %s (%s %s) on %s", image, card.name, card.version, _names(sets))
    measured = _measure(running_image(image, config=config), image, card, sets, thresholds.batch)
    production: dict[str, dict[str, float]] = {}
    if baseline:
        log.info("measuring production's %s on the same rows", baseline.image)
        production = _measure(
            running_image(baseline.image, config=config),
            baseline.image,
            baseline.card,
            sets,
            thresholds.batch,
        )
    scores = tuple(
        Score(s.name, s.sha256, len(_rows(s, card)), measured[s.name], production.get(s.name))
        for s in sets
    )
    checks = [
        check
        for score in scores
        for check in judge(
            score.metrics,
            thresholds,
            baseline=score.production,
            claimed=card.metrics if score.golden == own.name else None,
            golden=f"{score.golden} golden set",
        )
    ]
    evaluation = Evaluation(
        image=image,
        model=f"{card.name} {card.version}",
        metrics=measured[own.name],
        checks=tuple(checks),
        baseline=baseline.image.rsplit("@", 1)[1] if baseline else "",
        seconds=time.monotonic() - started,
        scores=scores,
        why_no_baseline=why_not,
    )
    _record(ledger, digest, card, own, evaluation)
    summarize(evaluation.markdown())
    for score in scores:
        log.info("on %s", score.line())
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


def _measure(
    running: AbstractContextManager[str],
    image: str,
    card: ModelCard,
    sets: list[GoldenText],
    batch: int,
) -> dict[str, dict[str, float]]:
    """Each golden set's metrics of the model that IMAGE serves (CARD's, checked), one run."""
    rows = {s.name: _rows(s, card) for s in sets}  # every row fits, before anything starts
    with running as url:
        served = _served_model(url)
        if served.get("sha256") != card.sha256:
            raise IntegrityError(
                f"{image} serves model sha256 {served.get('sha256')}, but its card says "
                f"{card.sha256}: evaluate the image with the model it was built from"
            )
        return {
            name: _metrics(card, chunk, _predict(url, card, chunk, batch))
            for name, chunk in rows.items()
        }


def _rows(golden: GoldenText, card: ModelCard) -> list[GoldenRow]:
    return parse_golden(golden, card, f"{golden.describe()} for {card.name} {card.version}")


def _distinct(sets: list[GoldenText]) -> list[GoldenText]:
    """One set per content: production's set is the candidate's own when the model is the same."""
    seen: dict[str, GoldenText] = {}
    for golden in sets:
        seen.setdefault(golden.sha256, golden)
    return list(seen.values())


def _names(sets: list[GoldenText]) -> str:
    return ", ".join(s.describe() for s in sets)


def _team_set(thresholds: Thresholds) -> list[GoldenText]:
    path = thresholds.golden_set
    if path is None:
        return []
    try:
        return [GoldenText("the team's", path.read_bytes())]
    except OSError as exc:
        raise ConfigError(
            f"goldenSet {path} of the quality gate cannot be read ({exc.strerror}): fix the "
            "path, relative to the thresholds file"
        ) from None


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


def _baseline(ledger: Ledger, image: str, no_baseline: bool) -> tuple[Baseline | None, str]:
    """What production runs, with the card and golden set of its newest passed evaluation; or
    None and why there is no comparison. Unproven when production runs an image that cannot be
    compared with and NO_BASELINE is not given."""
    repository, digest = image.rsplit("@", 1)
    running = ledger.runs(BASELINE)
    if not running:
        log.info("first release: production runs nothing yet, so there is no maxDrop comparison")
        return None, "first release"
    if running == digest:
        log.info("production runs this very image: nothing to compare it with")
        return None, "production runs this image"
    if no_baseline:
        log.warning("--no-baseline: not compared with production's %s (no maxDrop)", running)
        return None, "--no-baseline"
    passed = [r for r in ledger.read(running, EVALUATION) if r.payload.get("passed") is True]
    found = passed[-1].payload if passed else {}
    golden, card = found.get("golden") or {}, found.get("card")
    if not isinstance(golden.get("jsonl"), str) or not isinstance(card, dict):
        have = "no passed evaluation" if not passed else "an evaluation without its golden set"
        raise Unproven(
            f"production runs {running}, which has {have} to compare with on the same rows: "
            "run this evaluate-model on it, or pass --no-baseline to skip the maxDrop checks"
        )
    where = f"the evaluation of production's {running}"
    text = GoldenText("production's", golden["jsonl"].encode(), golden.get("rows"))
    try:
        production = ModelCard.from_dict(card)
    except CardError as exc:
        raise IntegrityError(f"{where} holds no valid model card: {exc}") from None
    if text.sha256 != golden.get("sha256"):
        raise IntegrityError(
            f"{where} holds a golden set with sha256 {text.sha256}, but says "
            f"{golden.get('sha256')}: the record was altered; evaluate production's image again"
        )
    return Baseline(f"{repository}@{running}", production, text), ""


def _record(
    ledger: Ledger, digest: str, card: ModelCard, own: GoldenText, evaluation: Evaluation
) -> None:
    """The verdict, every golden set's figures, and the card and golden set (the rows the next
    candidate is compared on, while this image serves production)."""
    payload = {
        "image": evaluation.image,
        "digest": digest,
        "model": {"name": card.name, "version": card.version, "sha256": card.sha256},
        "card": card.to_dict(),
        "golden": {"sha256": own.sha256, "rows": own.rows, "jsonl": own.data.decode()},
        "metrics": evaluation.metrics,
        "scores": [score.to_dict() for score in evaluation.scores],
        "claimed": card.metrics,
        "baseline": evaluation.baseline,
        "noBaseline": evaluation.why_no_baseline,
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
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="when production runs an image that has no evaluation to compare with: judge "
        "without the maxDrop checks (said in the log and the record)",
    )


@dataclass(frozen=True)
class EvaluationPlan:
    """The image and the thresholds; the model folder is fetch-model's, read at run time."""

    target: RegistryImage
    model_dir: Path
    thresholds: Thresholds
    no_baseline: bool = False

    def describe(self) -> str:
        image = self.target.image
        limits = ", ".join(sorted(self.thresholds.metrics))
        return (
            f"run {image.name}@{image.digest}, score the model in {self.model_dir} on its golden "
            f"set, judge {limits} and record the evaluation"
        )


def _plan(args: argparse.Namespace) -> EvaluationPlan:
    target = pinned_image(args, "the pushed image")
    return EvaluationPlan(
        target, args.model_dir, load_thresholds(args.thresholds), args.no_baseline
    )


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
            no_baseline=plan.no_baseline,
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
