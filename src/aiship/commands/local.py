"""`python -m aiship local ...`: the local stand-ins and the whole pipeline on one machine.

`local up|down|status|run`: Azurite, docker-registry, the Docker engine in swarm mode, and the
main job end to end (local/stack.py, local/pipeline.py).
`local cluster up|down|status`: the local Kubernetes cluster, a control plane and one real
node (local/kube_*.py).
`local tools [notation] [kubernetes]`: the pinned Go tools, built once into the cache
(clients/go.py, local/kube_build.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..support.errors import ConfigError
from .command import Command

if TYPE_CHECKING:
    from ..local.pipeline import RunOptions

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


@dataclass(frozen=True)
class StackPlan:
    """local up, down or status: which, and where their state lives."""

    action: str  # up, down, status
    state_dir: Path | None = None
    azurite_port: int | None = None
    registry_port: int | None = None

    def describe(self) -> str:
        return {
            "up": "start what of Azurite, the registry, the engine and swarm is not up",
            "down": "stop what local up and local run started, keeping the data",
            "status": "show each local stand-in, its address and its health",
        }[self.action]


def _stack_plan(action: str):
    def plan(args: argparse.Namespace) -> StackPlan:
        ports = (getattr(args, "azurite_port", None), getattr(args, "registry_port", None))
        if any(port is not None and not 0 < port < 65536 for port in ports):
            raise ConfigError("--azurite-port and --registry-port must be TCP ports (1-65535)")
        return StackPlan(action, args.state_dir, *ports)

    return plan


def stack_up(plan: StackPlan):
    from ..local.stack import up

    result = up(plan.state_dir, azurite_port=plan.azurite_port, registry_port=plan.registry_port)
    _show(result)
    return result


def stack_down(plan: StackPlan):
    from ..local.stack import down

    return down(plan.state_dir)


def stack_status(plan: StackPlan):
    from ..local.stack import status

    result = status(plan.state_dir)
    _show(result)
    return result


@dataclass(frozen=True)
class RunPlan:
    """local run: the pipeline's options, checked, and what they make it do."""

    options: RunOptions
    text: str
    show_summary: bool = True  # on stdout, unless --json prints the outputs there

    def describe(self) -> str:
        return self.text


def plan_run(args: argparse.Namespace) -> RunPlan:
    from ..local.pipeline import RunOptions, check_options

    options = RunOptions(
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
    return RunPlan(options, check_options(options), show_summary=not args.json)


def run_pipeline(plan: RunPlan):
    from ..local.pipeline import run_pipeline

    summary = run_pipeline(plan.options)
    if plan.show_summary:
        sys.stdout.write("\n".join(summary.lines()) + "\n")
    return summary


def _show(result) -> None:
    for name, component in result.components.items():
        state = "healthy" if component.healthy else "NOT healthy"
        mine = "  (ours: local down stops it)" if component.ours else ""
        log.info("  %-16s %-48s %s%s", name, component.address, state, mine)


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


@dataclass(frozen=True)
class ClusterPlan:
    """local cluster up, down or status: which, where its state and kubeconfig live."""

    action: str  # up, down, status
    state_dir: Path | None = None
    kubeconfig: Path | None = None
    timeout: float = 180.0
    registry_ports: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.action == "up":
            ports = ", ".join(f"127.0.0.1:{port}" for port in self.registry_ports)
            return (
                f"start the control plane and one real node pulling from {ports}; wait for it Ready"
            )
        return {
            "down": "stop the local node and control plane and remove all they made",
            "status": "show which components of the local cluster run",
        }[self.action]


def _registry_ports(args: argparse.Namespace) -> tuple[int, ...]:
    if args.registry_port:
        return tuple(args.registry_port)
    from ..local.stack import Stack

    return (Stack.load().registry_port,)


def plan_cluster_up(args: argparse.Namespace) -> ClusterPlan:
    if args.timeout <= 0:
        raise ConfigError("--timeout must be above 0")
    if any(not 0 < port < 65536 for port in args.registry_port or ()):
        raise ConfigError("--registry-port must be a TCP port (1-65535)")
    from ..local.kube_node import check_prerequisites

    check_prerequisites()
    ports = _registry_ports(args)
    return ClusterPlan("up", args.state_dir, args.kubeconfig, args.timeout, ports)


def _cluster_plan(action: str):
    def plan(args: argparse.Namespace) -> ClusterPlan:
        return ClusterPlan(action, args.state_dir, args.kubeconfig)

    return plan


def cluster_up(plan: ClusterPlan):
    from ..local.kube_cluster import up

    return up(
        plan.state_dir, plan.kubeconfig, timeout=plan.timeout, registry_ports=plan.registry_ports
    )


def cluster_down(plan: ClusterPlan):
    from ..local.kube_cluster import down

    return down(plan.state_dir, plan.kubeconfig)


def cluster_status(plan: ClusterPlan):
    from ..local.kube_cluster import status

    result = status(plan.state_dir, plan.kubeconfig)
    running = ", ".join(f"{name} (pid {pid})" for name, pid in result.components.items())
    log.info("%s: %s", "running" if result.running else "not running", running or "nothing")
    if result.server:
        log.info("API server %s (kubeconfig: %s)", result.server, result.kubeconfig)
    return result


# The pinned Go tools: local tools [notation] [kubernetes]

TOOLS = ("notation", "kubernetes")


@dataclass(frozen=True)
class ToolsPlan:
    names: tuple[str, ...]

    def describe(self) -> str:
        return f"build (or reuse from the cache) the pinned {' and '.join(self.names)}"


@dataclass(frozen=True)
class BuiltTools:
    paths: dict[str, str]  # tool -> its binary, or its folder of binaries

    def outputs(self) -> dict[str, object]:
        return dict(self.paths)


def _tools_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        choices=TOOLS,
        metavar="TOOL",
        help=f"what to build: {' and/or '.join(TOOLS)} (default: both)",
    )


def plan_tools(args: argparse.Namespace) -> ToolsPlan:
    return ToolsPlan(tuple(dict.fromkeys(args.names or TOOLS)))


def build_tools(plan: ToolsPlan) -> BuiltTools:
    from ..clients.go import ensure_notation
    from ..local.kube_build import ensure_binaries

    built = {}
    for name in plan.names:
        path = ensure_notation() if name == "notation" else ensure_binaries().bin_dir
        log.info("%s: %s", name, path)
        built[name] = str(path)
    return BuiltTools(built)


CLUSTER = Command(
    "cluster",
    help="a Kubernetes cluster on this machine (control plane on 127.0.0.1, one real node)",
    subcommands=(
        Command(
            "up",
            help="build or reuse the binaries, start, wait for the node to be Ready",
            flags=_cluster_up_flags,
            plan=plan_cluster_up,
            run=cluster_up,
        ),
        Command(
            "down",
            help="stop the node and the control plane and remove everything they made",
            flags=_cluster_flags,
            plan=_cluster_plan("down"),
            run=cluster_down,
        ),
        Command(
            "status",
            help="which components run, and where the API server answers",
            flags=_cluster_flags,
            plan=_cluster_plan("status"),
            run=cluster_status,
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
                "tools",
                help="build the pinned Go tools (Notation, Kubernetes) once into the cache",
                flags=_tools_flags,
                plan=plan_tools,
                run=build_tools,
            ),
            Command(
                "up",
                help="start Azurite, the registry, the Docker engine and swarm mode "
                "(what is not running)",
                flags=_port_flags,
                plan=_stack_plan("up"),
                run=stack_up,
            ),
            Command(
                "down",
                help="stop exactly what local up (and local run) started; data stays",
                flags=_state_dir_flag,
                plan=_stack_plan("down"),
                run=stack_down,
            ),
            Command(
                "status",
                help="each component, its address, and whether it is healthy",
                flags=_state_dir_flag,
                plan=_stack_plan("status"),
                run=stack_status,
            ),
            Command(
                "run",
                help="the main job: local up, the sample model if the store has none, CI, "
                "approval, release",
                flags=_run_flags,
                plan=plan_run,
                run=run_pipeline,
            ),
        ),
    ),
)
