"""`python -m steps local ...`: the local stand-ins and the whole pipeline on one machine.

`local up|down|status|run`: Azurite, docker-registry, the Docker engine in swarm mode, and the
main job end to end (steps/local/stack.py, steps/local/pipeline.py).
`local cluster up|down|status|build`: the local Kubernetes cluster, a control plane and one real
node (steps/local/kube_*.py).
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
    parser.add_argument(
        "--target",
        choices=("kubernetes", "swarm"),
        default="kubernetes",
        help="release to the local Kubernetes cluster's real node (default), or a Docker swarm",
    )
    parser.add_argument("--port", type=int, default=8080, help="the service's port (default: 8080)")
    parser.add_argument(
        "--service",
        default="aiship",
        help="swarm service name, or the port-forward's name on kubernetes (default: aiship)",
    )
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
    parser.add_argument(
        "--registry-port",
        type=int,
        action="append",
        help="a registry on 127.0.0.1:PORT the node pulls from; repeatable "
        "(default: the local stack's, 5000 unless local up chose another)",
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for the node to be Ready"
    )


def _says(plan: str):
    """A check for commands whose flags need no more than argparse's own checks."""

    def check(args: argparse.Namespace) -> str:
        return plan

    return check


def _registry_ports(args: argparse.Namespace) -> tuple[int, ...]:
    if args.registry_port:
        return tuple(args.registry_port)
    from ..local.stack import Stack

    return (Stack.load().registry_port,)


def check_cluster_up(args: argparse.Namespace) -> str:
    if args.timeout <= 0:
        raise ConfigError("--timeout must be above 0")
    if any(not 0 < port < 65536 for port in args.registry_port or ()):
        raise ConfigError("--registry-port must be a TCP port (1-65535)")
    from ..local.kube_node import check_prerequisites

    check_prerequisites()
    ports = ", ".join(f"127.0.0.1:{port}" for port in _registry_ports(args))
    return f"start the control plane and one real node pulling from {ports}; wait for it Ready"


def cluster_up(args: argparse.Namespace):
    from ..local.kube_cluster import up

    return up(
        args.state_dir, args.kubeconfig, timeout=args.timeout, registry_ports=_registry_ports(args)
    )


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
    help="a Kubernetes cluster on this machine (control plane on 127.0.0.1, one real node)",
    subcommands=(
        Command(
            "up",
            help="build or reuse the binaries, start, wait for the node to be Ready",
            flags=_cluster_up_flags,
            check=check_cluster_up,
            run=cluster_up,
        ),
        Command(
            "down",
            help="stop the node and the control plane and remove everything they made",
            flags=_cluster_flags,
            check=_says("stop the local node and control plane and remove all they made"),
            run=cluster_down,
        ),
        Command(
            "status",
            help="which components run, and where the API server answers",
            flags=_cluster_flags,
            check=_says("show which components of the local cluster run"),
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
