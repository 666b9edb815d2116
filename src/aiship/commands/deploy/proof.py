"""What a deploy must find proven about a digest, and what it records: records in the image's
own registry (clients/records.py), so the proof travels with the image.

A staging deploy that passed its smoke test writes a *staging pass*; every deploy, whatever its
outcome, writes a *deploy* record, and one that left the environment running a release points
the tag deployed-<environment> at it (evaluate-model's baseline). A production deploy refuses a
digest without a staging pass and a passing *evaluation* (evaluate-model's, from CI).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ...clients.records import EVALUATION, Ledger, Record
from ...support.errors import StepError, Unproven
from ...support.git import ci_run
from .release import DeployResult, Release

log = logging.getLogger(__name__)

STAGING_PASS = "staging-pass"  # noqa: S105  (a record kind, not a password)
DEPLOY = "deploy"
STAGING = "staging"
PRODUCTION = "production"  # the environment that requires a staging pass
PASSED = frozenset({"deployed", "unchanged", "promoted"})


def release_fields(release: Release) -> dict[str, object]:
    return {
        "image": release.image,
        "digest": release.digest,
        "revision": release.revision,
        "model": {"version": release.model_version, "sha256": release.model_sha256},
    }


def require_staging_pass(ledger: Ledger, release: Release, skip: bool = False) -> Record | None:
    """The newest staging pass of RELEASE's digest; none: Unproven, unless SKIP (logged)."""
    passes = ledger.read(release.digest, STAGING_PASS)
    if passes:
        found = passes[-1]
        log.info(
            "staging pass of %s: %s in %s at %s",
            release.image,
            found.payload.get("result"),
            found.payload.get("where"),
            found.created,
        )
        return found
    if skip:
        log.warning(
            "%s has no staging pass: deploying anyway (--skip-staging-check)", release.image
        )
        return None
    raise Unproven(
        f"{release.image} has no staging pass: deploy it to staging first (deploy --environment "
        "staging --smoke-test), or override with --skip-staging-check"
    )


def require_evaluation(ledger: Ledger, release: Release, skip: bool = False) -> Record | None:
    """The newest evaluation of RELEASE's digest, which must have passed; else Unproven, unless
    SKIP (logged)."""
    found = ledger.read(release.digest, EVALUATION)
    newest = found[-1] if found else None
    if newest is not None and newest.payload.get("passed") is True:
        log.info("evaluation of %s: passed at %s", release.image, newest.created)
        return newest
    if newest is None:
        problem = "has no evaluation: run evaluate-model on it (CI does, before promote-image)"
    else:
        problem = f"failed its quality gate ({newest.payload.get('reason', '?')})"
    if skip:
        log.warning("%s %s: deploying anyway (--skip-evaluation-check)", release.image, problem)
        return None
    raise Unproven(f"{release.image} {problem}; or override with --skip-evaluation-check")


def proven_deploy(
    deploy: Callable[[], DeployResult],
    *,
    ledger: Ledger,
    release: Release,
    environment: str,
    strategy: str,
    where: str,
    smoke_tested: bool,
    skip_staging_check: bool = False,
    skip_evaluation_check: bool = False,
) -> DeployResult:
    """DEPLOY, once a production release's staging pass and evaluation are found, then its
    records: a deploy record whatever the outcome, a staging pass for a staging deploy that
    passed its smoke test, and the environment's tag. A deploy whose records cannot be written
    fails, saying what did happen."""
    if environment == PRODUCTION:
        require_staging_pass(ledger, release, skip_staging_check)
        require_evaluation(ledger, release, skip_evaluation_check)
    outcome = {
        **release_fields(release),
        "environment": environment,
        "where": where,
        "strategy": strategy,
        "smoke_tested": smoke_tested,
        "run": ci_run(),
    }
    try:
        result = deploy()
    except StepError as exc:
        failed = {
            **outcome,
            "result": exc.outputs.get("result", "failed"),
            "checks": exc.outputs.get("checks", []),
            "error": str(exc),
        }
        try:
            write_records(ledger, release, failed)
        except StepError as unwritten:  # the deploy's own error matters more: log this one
            log.error("%s", unwritten)
        raise
    outcome.update(
        result=result.result, previous_image=result.previous_image, checks=list(result.checks)
    )
    kinds = [DEPLOY]
    if environment == STAGING and smoke_tested and result.result in PASSED:
        kinds.append(STAGING_PASS)
    for kind in kinds:
        write_records(ledger, release, outcome, kind)
    try:
        ledger.mark_running(environment, release.digest)
    except StepError as exc:
        raise StepError(
            f"the deploy ended ({result.result}), but the tag of what {environment} runs could "
            f"not be moved: {exc}"
        ) from None
    return result


def write_records(ledger: Ledger, release: Release, payload: dict, kind: str = DEPLOY) -> Record:
    stamped = {**payload, "time": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        return ledger.write(release.digest, kind, stamped)
    except StepError as exc:
        raise StepError(
            f"the deploy ended ({payload.get('result', '?')}), but its {kind} record could not be "
            f"written to the registry: {exc}"
        ) from None
