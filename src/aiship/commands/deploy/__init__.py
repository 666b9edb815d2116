"""`deploy` and `rollback`: roll an image out BY DIGEST, check it, roll back by itself when
anything fails, and record the outcome with the image.

Two targets with the same semantics: `kubernetes` (kubectl against AKS or any cluster) and
`swarm` (a local Docker swarm, so a laptop deploys real, running containers). On kubernetes a
release is rolled (`--strategy rolling`) or goes through a canary judged on the service's own
metrics (`--strategy canary`, the default for production). Records about the digest (the staging
pass, each deploy) live in the image's registry: production refuses a digest staging did not pass.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...support.errors import ConfigError, StepError
from ...support.git import ci_revision
from ...support.outputs import summarize
from ...support.paths import project_manifests
from ..command import (
    REGISTRY_ENVIRONMENT,
    AcrTarget,
    Command,
    RegistryImage,
    acr_target,
    add_switch,
    kubeconfig_of,
    registry_flags,
    registry_image,
)
from .proof import PRODUCTION
from .release import DeployResult, KubernetesTarget, Release

if TYPE_CHECKING:
    from ...clients.kubectl import Kubectl
    from .analysis import Analysis
    from .canary import AbortResult

STRATEGIES = ("rolling", "canary")


def _target_flags(parser: argparse.ArgumentParser) -> None:
    """Where: the flags `deploy` and `rollback` share."""
    registry_flags(parser)
    parser.add_argument(
        "--target",
        required=True,
        choices=("kubernetes", "swarm"),
        help="where the app runs: a Kubernetes cluster (kubectl, AKS) or a Docker swarm",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds the rollout may take before it counts as failed",
    )
    kube = parser.add_argument_group("kubernetes")
    _cluster_flags(kube, "namespace to deploy into")
    kube.add_argument(
        "--overlay",
        default="production",
        help="manifests/overlays/NAME, or 'base' (default: production)",
    )
    kube.add_argument(
        "--environment",
        help="the environment recorded with the image (default: the overlay's name); "
        f"{PRODUCTION} requires a staging pass and a passing evaluation",
    )


def _cluster_flags(group: argparse._ActionsContainer, namespace: str) -> None:
    """Which cluster and namespace: the flags deploy, rollback and abort share."""
    group.add_argument("--kubeconfig", type=Path, help="[KUBECONFIG]")
    group.add_argument("--context", help="kubeconfig context (default: the current one)")
    group.add_argument("--namespace", help=namespace)


def _flags(parser: argparse.ArgumentParser) -> None:
    _target_flags(parser)
    parser.add_argument("--image", required=True, help="REPOSITORY@sha256:... (a tag is refused)")
    parser.add_argument(
        "--revision",
        default=ci_revision() or "unknown",
        help="git revision to record (default: the CI system's)",
    )
    parser.add_argument("--model-version", default="unknown", help="model version to record")
    parser.add_argument(
        "--model-sha256",
        default="",
        help="the model's sha256 (resolve-image's model_sha256): the smoke test expects it",
    )
    add_switch(parser, "--smoke-test", "after the rollout, check /version and one real prediction")
    parser.add_argument("--smoke-url", help="URL to smoke-test instead of the default one")
    parser.add_argument(
        "--skip-staging-check",
        action="store_true",
        help=f"deploy to {PRODUCTION} without a staging pass (logged)",
    )
    parser.add_argument(
        "--skip-evaluation-check",
        action="store_true",
        help=f"deploy to {PRODUCTION} without a passing evaluation (logged)",
    )
    kube = parser.add_argument_group("kubernetes canary")
    kube.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help=f"canary (the default for {PRODUCTION}) or rolling (the default elsewhere)",
    )
    kube.add_argument(
        "--analysis",
        type=Path,
        default=project_manifests() / "analysis.yaml",
        help="the canary's steps and checks (default: manifests/analysis.yaml)",
    )
    kube.add_argument(
        "--pause", type=float, help="seconds each canary step is watched (instead of the file's)"
    )
    swarm = parser.add_argument_group("swarm")
    swarm.add_argument("--service", help="swarm service name")
    swarm.add_argument("--port", type=int, help="port the service listens on (host network)")


@dataclass(frozen=True)
class SwarmTarget:
    """Where a swarm deploy goes: a service on the host network."""

    service: str
    port: int

    def describe(self) -> str:
        return f"swarm service {self.service} on port {self.port}"


@dataclass(frozen=True)
class Plan:
    """A deploy's (or rollback's) flags, checked: what goes where, how, and what it records."""

    release: Release
    environment: str
    strategy: str  # rolling, canary, or rollback
    target: KubernetesTarget | SwarmTarget
    registry: RegistryImage  # where the records about the image go, and the login for them
    timeout: float = 300
    smoke_test: bool = False
    smoke_url: str | None = None
    analysis: Analysis | None = None
    skip_staging_check: bool = False
    skip_evaluation_check: bool = False

    def __post_init__(self) -> None:
        from ...clients.records import deployed_tag

        deployed_tag(self.environment)  # the environment names a tag: refused before any deploy

    @property
    def where(self) -> str:
        return self.target.describe()

    def describe(self) -> str:
        if self.strategy == "rollback":
            return (
                f"put {self.where} back on the release it ran before, at once (no analysis), "
                "smoke-test it and record it"
            )
        release = self.release
        expecting = (
            f" expecting model sha256 {release.model_sha256}" if release.model_sha256 else ""
        )
        smoke = f", smoke-test it{expecting}" if self.smoke_test else ""
        how = "through a canary" if self.strategy == "canary" else "rolling"
        acr = self.registry.acr
        records = f" in ACR {acr.name}" if acr else ""
        return (
            f"roll out {release.change_cause} to {self.environment}, {self.where}, {how}{smoke}, "
            f"roll back on failure, and record the outcome with the image{records}"
        )


def _kubernetes_target(args: argparse.Namespace) -> KubernetesTarget:
    from .kubernetes import overlay_folder

    if not args.namespace:
        raise ConfigError("--target kubernetes needs --namespace (and --kubeconfig or KUBECONFIG)")
    overlay_folder(args.overlay)
    return KubernetesTarget(kubeconfig_of(args), args.namespace, args.context, args.overlay)


def _plan(args: argparse.Namespace) -> Plan:
    release = Release(args.image, args.revision, args.model_version, args.model_sha256)
    registry = registry_image(args)
    checks = {
        "timeout": args.timeout,
        "smoke_test": args.smoke_test,
        "smoke_url": args.smoke_url,
        "skip_staging_check": args.skip_staging_check,
        "skip_evaluation_check": args.skip_evaluation_check,
    }
    if args.target == "swarm":
        if not args.service or not args.port:
            raise ConfigError("--target swarm needs --service and --port")
        if args.strategy == "canary":
            raise ConfigError(
                "--strategy canary needs --target kubernetes (a Service in front of two "
                "Deployments); swarm rolls out with rollback: drop --strategy"
            )
        swarm = SwarmTarget(args.service, args.port)
        return Plan(release, args.environment or "local", "rolling", swarm, registry, **checks)
    target = _kubernetes_target(args)
    environment = args.environment or args.overlay
    strategy = args.strategy or ("canary" if environment == PRODUCTION else "rolling")
    analysis = None
    if strategy == "canary":
        from .analysis import load_analysis

        analysis = load_analysis(args.analysis)
        if args.pause is not None:
            analysis = replace(
                analysis, steps=tuple(replace(s, pause=args.pause) for s in analysis.steps)
            )
    return Plan(release, environment, strategy, target, registry, analysis=analysis, **checks)


def _run(plan: Plan) -> DeployResult:
    target = plan.target
    if isinstance(target, KubernetesTarget):
        from .kubernetes import deploy_kubernetes

        def deploy() -> DeployResult:
            return deploy_kubernetes(
                plan.release,
                target,
                timeout=plan.timeout,
                smoke_test=plan.smoke_test,
                smoke_url=plan.smoke_url,
                canary=plan.analysis,
            )
    else:
        from .swarm import deploy_swarm

        def deploy() -> DeployResult:
            return deploy_swarm(
                plan.release,
                service=target.service,
                port=target.port,
                timeout=plan.timeout,
                smoke_test=plan.smoke_test,
                smoke_url=plan.smoke_url,
            )

    return _recorded(plan, deploy)


def _recorded(plan: Plan, deploy: Callable[[], DeployResult]) -> DeployResult:
    """DEPLOY with its proof and records (proof.py), its outcome written as the job summary."""
    from .proof import Ledger, proven_deploy

    login, _ = plan.registry.login()
    try:
        result = proven_deploy(
            deploy,
            ledger=Ledger.of(login, plan.release.image),
            release=plan.release,
            environment=plan.environment,
            strategy=plan.strategy,
            where=plan.where,
            smoke_tested=plan.smoke_test,
            skip_staging_check=plan.skip_staging_check,
            skip_evaluation_check=plan.skip_evaluation_check,
        )
    except StepError as exc:
        summarize(summary(plan, exc.outputs.get("result", "failed"), exc.outputs, str(exc)))
        raise
    summarize(summary(plan, result.result, result.outputs()))
    return result


def summary(plan: Plan, result: str, outputs: dict, error: str = "") -> str:
    """The job summary of a deploy, in markdown."""
    release = plan.release
    rows = [
        ("image", f"`{release.image}`"),
        ("revision", release.revision),
        ("model", f"{release.model_version} (sha256 `{release.model_sha256[:12] or '?'}`)"),
        ("where", plan.where),
        ("strategy", plan.strategy),
        ("before", f"`{outputs.get('previous_image') or 'nothing'}`"),
    ]
    lines = [f"### Deploy to {plan.environment}: {result}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", *(f"- {check}" for check in outputs.get("checks", []))]
    if error:
        lines += ["", f"**{error}**"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RollbackPlan:
    """Production back on the release it ran before: found in the cluster at run time."""

    target: KubernetesTarget
    environment: str
    registry: AcrTarget | None
    timeout: float = 300

    def describe(self) -> str:
        return (
            f"put namespace {self.target.namespace} back on the release it ran before, at once (no "
            "analysis), smoke-test it and record it"
        )


def _plan_rollback(args: argparse.Namespace) -> RollbackPlan:
    if args.target != "kubernetes":
        raise ConfigError(
            "rollback needs --target kubernetes; swarm rolls back by itself when a rollout fails"
        )
    target = _kubernetes_target(args)
    return RollbackPlan(target, args.environment or args.overlay, acr_target(args), args.timeout)


def _rollback(rollback: RollbackPlan) -> DeployResult:
    from ...clients.registry import ImageRef
    from .kubernetes import deploy_kubernetes, release_to_roll_back, remove_the_canary

    target = rollback.target
    point = release_to_roll_back(target)
    previous = point.release
    # The image's registry is known only now: its records go there, with the same login.
    registry = RegistryImage(ImageRef.parse(previous.image), previous.image, rollback.registry)
    # It ran in production before: its staging pass and evaluation are not asked for again.
    plan = Plan(
        previous,
        rollback.environment,
        "rollback",
        target,
        registry,
        timeout=rollback.timeout,
        smoke_test=point.canary is None,
        skip_staging_check=True,
        skip_evaluation_check=True,
    )

    def deploy() -> DeployResult:
        if point.canary is not None:
            return remove_the_canary(target, point)
        result = deploy_kubernetes(previous, target, timeout=rollback.timeout, smoke_test=True)
        return replace(result, result="rolled-back")

    return _recorded(plan, deploy)


@dataclass(frozen=True)
class AbortPlan:
    """Remove the canary in a namespace; with ONLY_RUN, only one that run started."""

    kubectl: Kubectl
    only_run: str | None

    def describe(self) -> str:
        whose = f"if {self.only_run} started it" if self.only_run else "whichever run started it"
        return f"remove the canary in namespace {self.kubectl.namespace}, {whose}; stable untouched"


def _abort_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", required=True, choices=("kubernetes",), help="where the canary runs"
    )
    _cluster_flags(parser, "namespace of the canary")
    parser.add_argument(
        "--any",
        action="store_true",
        help="remove the canary whichever run started it (default in CI: only this run's, as a "
        "cancelled job's clean-up; outside CI: any)",
    )


def _plan_abort(args: argparse.Namespace) -> AbortPlan:
    from ...clients.kubectl import Kubectl
    from ...support.git import ci_run
    from .canary_state import run_label

    if not args.namespace:
        raise ConfigError("abort needs --namespace (and --kubeconfig or KUBECONFIG)")
    in_ci = ci_run()["system"] != "local"
    only_run = run_label() if in_ci and not args.any else None
    return AbortPlan(Kubectl(kubeconfig_of(args), args.namespace, args.context), only_run)


def _abort(plan: AbortPlan) -> AbortResult:
    from .canary import abort_canary
    from .kubernetes import check_access

    check_access(plan.kubectl)
    return abort_canary(plan.kubectl, plan.only_run)


COMMANDS = (
    Command(
        "deploy",
        help="roll out an image by digest (rolling or canary), smoke-test it, roll back on failure",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
    Command(
        "rollback",
        help="put production back on the release it ran before, at once, with no analysis "
        "(with a canary running: remove only the canary)",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_target_flags,
        plan=_plan_rollback,
        run=_rollback,
    ),
    Command(
        "abort",
        help="remove a canary left by a cancelled or killed deploy; stable untouched",
        flags=_abort_flags,
        plan=_plan_abort,
        run=_abort,
    ),
)
