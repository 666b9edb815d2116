"""`deploy`: roll an image out BY DIGEST, check it, and roll back by itself when anything fails.

Two targets with the same semantics: `kubernetes` (kubectl against AKS or any cluster) and
`swarm` (a local Docker swarm, so a laptop deploys real, running containers).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ...support.errors import ConfigError
from ...support.git import ci_revision
from ..command import Command
from .release import DeployResult, Release


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, choices=("kubernetes", "swarm"))
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
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds the rollout may take before it counts as failed",
    )
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="after the rollout, check /version and one real prediction",
    )
    parser.add_argument("--smoke-url", help="URL to smoke-test instead of the default one")
    kube = parser.add_argument_group("kubernetes")
    kube.add_argument("--kubeconfig", type=Path, help="[KUBECONFIG]")
    kube.add_argument("--context", help="kubeconfig context (default: the current one)")
    kube.add_argument("--namespace", help="namespace to deploy into")
    kube.add_argument(
        "--overlay",
        default="production",
        help="manifests/overlays/NAME, or 'base' (default: production)",
    )
    swarm = parser.add_argument_group("swarm")
    swarm.add_argument("--service", help="swarm service name")
    swarm.add_argument("--port", type=int, help="port the service listens on (host network)")


def _kubeconfig(args: argparse.Namespace) -> Path:
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not kubeconfig or not args.namespace:
        raise ConfigError("--target kubernetes needs --kubeconfig (or KUBECONFIG) and --namespace")
    return Path(kubeconfig)


def _check(args: argparse.Namespace) -> str:
    release = Release(args.image, args.revision, args.model_version, args.model_sha256)
    if args.target == "kubernetes":
        from .kubernetes import overlay_folder

        _kubeconfig(args)
        where = f"namespace {args.namespace} (overlay {overlay_folder(args.overlay).name})"
    else:
        if not args.service or not args.port:
            raise ConfigError("--target swarm needs --service and --port")
        where = f"swarm service {args.service} on port {args.port}"
    expecting = f" expecting model sha256 {release.model_sha256}" if release.model_sha256 else ""
    smoke = f", smoke-test it{expecting}" if args.smoke_test else ""
    return f"roll out {release.change_cause} to {where}{smoke}, and roll back on failure"


def _run(args: argparse.Namespace) -> DeployResult:
    release = Release(args.image, args.revision, args.model_version, args.model_sha256)
    if args.target == "kubernetes":
        from .kubernetes import deploy_kubernetes

        return deploy_kubernetes(
            release,
            kubeconfig=_kubeconfig(args),
            namespace=args.namespace,
            context=args.context,
            overlay=args.overlay,
            timeout=args.timeout,
            smoke_test=args.smoke_test,
            smoke_url=args.smoke_url,
        )
    from .swarm import deploy_swarm

    return deploy_swarm(
        release,
        service=args.service,
        port=args.port,
        timeout=args.timeout,
        smoke_test=args.smoke_test,
        smoke_url=args.smoke_url,
    )


COMMANDS = (
    Command(
        "deploy",
        help="roll out an image by digest, smoke-test it, roll back on failure",
        flags=_flags,
        check=_check,
        run=_run,
    ),
)
