"""`python -m steps local cluster up|down|status|build`: the local Kubernetes control plane."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import add_common

log = logging.getLogger(__name__)


def register(commands) -> None:
    local = commands.add_parser("local", help="local stand-ins for the cloud services")
    stand_ins = local.add_subparsers(dest="stand_in", required=True, metavar="STAND_IN")
    cluster = stand_ins.add_parser(
        "cluster", help="a Kubernetes control plane on 127.0.0.1 (etcd, kube-*, kwok nodes)"
    )
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, run) -> argparse.ArgumentParser:
        parser = add_common(actions.add_parser(name, help=help_text))
        parser.set_defaults(run=run)
        return parser

    for parser in (
        action("up", "build or reuse the binaries, start, wait for Ready nodes", run_up),
        action("down", "stop every process of the cluster and remove its state", run_down),
        action("status", "which components run, and where the API server answers", run_status),
    ):
        parser.add_argument("--state-dir", type=Path, help="state folder (default: .local/cluster)")
        parser.add_argument(
            "--kubeconfig", type=Path, help="kubeconfig to write (default: STATE_DIR/kubeconfig)"
        )
    action("build", "build (or reuse) the pinned binaries; a second run costs nothing", run_build)
    up = actions.choices["up"]
    up.add_argument("--nodes", type=int, default=1, help="how many kwok nodes (default: 1)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Ready nodes")


def run_up(args: argparse.Namespace) -> dict:
    from .kube_cluster import up

    return up(args.state_dir, args.kubeconfig, nodes=args.nodes, timeout=args.timeout)


def run_down(args: argparse.Namespace) -> dict:
    from .kube_cluster import down

    return down(args.state_dir, args.kubeconfig)


def run_status(args: argparse.Namespace) -> dict:
    from .kube_cluster import status

    result = status(args.state_dir, args.kubeconfig)
    running = ", ".join(f"{name} (pid {pid})" for name, pid in result["components"].items())
    log.info("%s: %s", "running" if result["running"] else "not running", running or "nothing")
    if result["server"]:
        log.info("API server %s (kubeconfig: %s)", result["server"], result["kubeconfig"])
    return result


def run_build(args: argparse.Namespace) -> dict:
    from .kube_build import FOLDERS, ensure_binaries

    built = ensure_binaries()
    log.info("binaries in %s", built.bin_dir)
    versions = {f"{FOLDERS[pin]}_version": version for pin, version in built.versions.items()}
    return {"kube_bin_dir": str(built.bin_dir), **versions}
