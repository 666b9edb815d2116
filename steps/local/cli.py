"""`python -m steps local ...`: the local stand-ins and the whole pipeline on one machine.

`local up|down|status|run`: Azurite, docker-registry, the Docker engine in swarm mode, and the
main job end to end (steps/local/stack.py, steps/local/pipeline.py).
`local cluster up|down|status|build`: the local Kubernetes control plane.
"""

from __future__ import annotations

import argparse
import logging
import sys
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
    register_stack(stand_ins)


def register_stack(stand_ins) -> None:
    """`local up|down|status|run`, next to `local cluster`."""

    def command(name: str, help_text: str, run) -> argparse.ArgumentParser:
        parser = add_common(stand_ins.add_parser(name, help=help_text, description=help_text))
        parser.add_argument(
            "--state-dir", type=Path, help="where pids, ports and data live (default: .local/)"
        )
        parser.set_defaults(run=run)
        return parser

    up = command(
        "up",
        "start Azurite, the registry, the Docker engine and swarm mode (what is not running)",
        run_stack_up,
    )
    command(
        "down", "stop exactly what local up (and local run) started; data stays", run_stack_down
    )
    command("status", "each component, its address, and whether it is healthy", run_stack_status)
    run = command(
        "run",
        "the main job: local up, the sample model if the store has none, CI, approval, release",
        run_pipeline,
    )
    for parser in (up, run):
        parser.add_argument(
            "--azurite-port", type=int, help="Azurite's port when it starts (default: 10000)"
        )
        parser.add_argument(
            "--registry-port", type=int, help="the registry's port when it starts (default: 5000)"
        )
    run.add_argument(
        "--approve", action="store_true", help="approve the release in advance (no question)"
    )
    run.add_argument("--target", choices=("swarm", "kubernetes"), default="swarm")
    run.add_argument("--port", type=int, default=8080, help="the service's port (default: 8080)")
    run.add_argument("--service", default="aiship", help="swarm service name (default: aiship)")
    run.add_argument("--base-image", help="image to build on (default: local/python:3.11-slim)")
    run.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the rollout may take (default: 300)"
    )


def run_stack_up(args: argparse.Namespace) -> dict:
    from .stack import up

    result = up(args.state_dir, azurite_port=args.azurite_port, registry_port=args.registry_port)
    _show(result)
    return _flat(result)


def run_stack_down(args: argparse.Namespace) -> dict:
    from .stack import down

    result = down(args.state_dir)
    return {"stopped": ",".join(result["stopped"]), "state_dir": result["state_dir"]}


def run_stack_status(args: argparse.Namespace) -> dict:
    from .stack import status

    result = status(args.state_dir)
    _show(result)
    return _flat(result)


def run_pipeline(args: argparse.Namespace) -> dict:
    from .pipeline import RunOptions, run_pipeline, summary_lines

    outputs = run_pipeline(
        RunOptions(
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
    )
    if not args.json:
        sys.stdout.write("\n".join(summary_lines(outputs)) + "\n")
    return outputs


def _show(result: dict) -> None:
    for name, component in result["components"].items():
        state = "healthy" if component["healthy"] else "NOT healthy"
        mine = "  (ours: local down stops it)" if component["ours"] else ""
        log.info("  %-16s %-48s %s%s", name, component["address"], state, mine)


def _flat(result: dict) -> dict:
    """Step outputs are flat: name -> text."""
    flat = {
        "healthy": result["healthy"],
        "store": result["store"],
        "registry": result["registry"],
        "state_dir": result["state_dir"],
    }
    if "started" in result:
        flat["started"] = ",".join(result["started"])
    return flat


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
