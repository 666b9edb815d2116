"""`python -m steps local ...`: the local stand-ins and the whole pipeline on one machine.

`local up|down|status|run`: Azurite, docker-registry, the Docker engine in swarm mode, and the
main job end to end (steps/local/stack.py, steps/local/pipeline.py).
`local cluster up|down|status|build`: the local Kubernetes control plane (steps/local/kube_*.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..support.errors import ConfigError
from .command import Command

log = logging.getLogger(__name__)


# The stack: local up | down | status | run


def _state_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, help="where pids, ports and data live (default: .local/)"
    )


def _port_flags(parser: argparse.ArgumentParser) -> None:
    _state_dir_flag(parser)
    parser.add_argument(
        "--azurite-port", type=int, help="Azurite's port when it starts (default: 10000)"
    )
    parser.add_argument(
        "--registry-port", type=int, help="the registry's port when it starts (default: 5000)"
    )


def _run_flags(parser: argparse.ArgumentParser) -> None:
    _port_flags(parser)
    parser.add_argument(
        "--approve", action="store_true", help="approve the release in advance (no question)"
    )
    parser.add_argument("--target", choices=("swarm", "kubernetes"), default="swarm")
    parser.add_argument("--port", type=int, default=8080, help="the service's port (default: 8080)")
    parser.add_argument("--service", default="aiship", help="swarm service name (default: aiship)")
    parser.add_argument("--base-image", help="image to build on (default: local/python:3.11-slim)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the rollout may take (default: 300)"
    )


def stack_up(args: argparse.Namespace):
    from ..local.stack import up

    result = up(args.state_dir, azurite_port=args.azurite_port, registry_port=args.registry_port)
    _show(result)
    return result


def stack_down(args: argparse.Namespace):
    from ..local.stack import down

    return down(args.state_dir)


def stack_status(args: argparse.Namespace):
    from ..local.stack import status

    result = status(args.state_dir)
    _show(result)
    return result


def _run_options(args: argparse.Namespace):
    from ..local.pipeline import RunOptions

    return RunOptions(
        state_dir=args.state_dir,
        approve=args.approve,
        target=args.target,
        service=args.service,
        port=args.port,
        base_image=args.base_image,
        azurite_port=args.azurite_port,
        registry_port=args.registry_port,
        timeout=args.timeout,
        terminal=sys.stdin.isatty(),
    )


def check_run(args: argparse.Namespace) -> str:
    from ..local.pipeline import check_options

    return check_options(_run_options(args))


def run_pipeline(args: argparse.Namespace):
    from ..local.pipeline import run_pipeline

    summary = run_pipeline(_run_options(args))
    if not args.json:
        sys.stdout.write("\n".join(summary.lines()) + "\n")
    return summary


def _show(result) -> None:
    for name, component in result.components.items():
        state = "healthy" if component["healthy"] else "NOT healthy"
        mine = "  (ours: local down stops it)" if component["ours"] else ""
        log.info("  %-16s %-48s %s%s", name, component["address"], state, mine)


# The Kubernetes control plane: local cluster up | down | status | build


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, help="state folder (default: .local/cluster)")
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig to write (default: STATE_DIR/kubeconfig)"
    )


def _cluster_up_flags(parser: argparse.ArgumentParser) -> None:
    _cluster_flags(parser)
    parser.add_argument("--nodes", type=int, default=1, help="how many kwok nodes (default: 1)")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for Ready nodes"
    )


def _says(plan: str):
    """A check for commands whose flags need no more than argparse's own checks."""

    def check(args: argparse.Namespace) -> str:
        return plan

    return check


def check_cluster_up(args: argparse.Namespace) -> str:
    if args.nodes < 1 or args.timeout <= 0:
        raise ConfigError("--nodes must be at least 1 and --timeout above 0")
    return f"start the control plane with {args.nodes} node(s) and wait for them to be Ready"


def cluster_up(args: argparse.Namespace):
    from ..local.kube_cluster import up

    return up(args.state_dir, args.kubeconfig, nodes=args.nodes, timeout=args.timeout)


def cluster_down(args: argparse.Namespace):
    from ..local.kube_cluster import down

    return down(args.state_dir, args.kubeconfig)


def cluster_status(args: argparse.Namespace):
    from ..local.kube_cluster import status

    result = status(args.state_dir, args.kubeconfig)
    running = ", ".join(f"{name} (pid {pid})" for name, pid in result.components.items())
    log.info("%s: %s", "running" if result.running else "not running", running or "nothing")
    if result.server:
        log.info("API server %s (kubeconfig: %s)", result.server, result.kubeconfig)
    return result


def cluster_build(args: argparse.Namespace):
    from ..local.kube_build import ensure_binaries

    built = ensure_binaries()
    log.info("binaries in %s", built.bin_dir)
    return built


CLUSTER = Command(
    "cluster",
    help="a Kubernetes control plane on 127.0.0.1 (etcd, kube-*, kwok nodes)",
    subcommands=(
        Command(
            "up",
            help="build or reuse the binaries, start, wait for Ready nodes",
            flags=_cluster_up_flags,
            check=check_cluster_up,
            run=cluster_up,
        ),
        Command(
            "down",
            help="stop every process of the cluster and remove its state",
            flags=_cluster_flags,
            check=_says("stop every process of the local control plane and remove its state"),
            run=cluster_down,
        ),
        Command(
            "status",
            help="which components run, and where the API server answers",
            flags=_cluster_flags,
            check=_says("show which components of the local control plane run"),
            run=cluster_status,
        ),
        Command(
            "build",
            help="build (or reuse) the pinned binaries; a second run costs nothing",
            check=_says("build the pinned Kubernetes binaries, or reuse them from the cache"),
            run=cluster_build,
        ),
    ),
)

COMMANDS = (
    Command(
        "local",
        help="local stand-ins for the cloud services",
        subcommands=(
            CLUSTER,
            Command(
                "up",
                help="start Azurite, the registry, the Docker engine and swarm mode "
                "(what is not running)",
                flags=_port_flags,
                check=_says("start what of Azurite, the registry, the engine and swarm is not up"),
                run=stack_up,
            ),
            Command(
                "down",
                help="stop exactly what local up (and local run) started; data stays",
                flags=_state_dir_flag,
                check=_says("stop what local up and local run started, keeping the data"),
                run=stack_down,
            ),
            Command(
                "status",
                help="each component, its address, and whether it is healthy",
                flags=_state_dir_flag,
                check=_says("show each local stand-in, its address and its health"),
                run=stack_status,
            ),
            Command(
                "run",
                help="the main job: local up, the sample model if the store has none, CI, "
                "approval, release",
                flags=_run_flags,
                check=check_run,
                run=run_pipeline,
            ),
        ),
    ),
)
