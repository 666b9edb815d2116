"""Release timings: deploy-to-healthy for an update, and from the start of a failing deploy to
the previous version serving again, on a local swarm and on the local Kubernetes control plane.

`python -m bench.deploy [--rounds N]` (as root: it starts dockerd when none answers). Swarm runs
the real image (two model versions and one that never starts) pushed to docker-registry on
127.0.0.1; Kubernetes runs on the control plane of tools/kube, where kwok plays the kubelet (pods
are Ready at once, or never for an image named `never-ready`), so its figures are the control
plane's own rollout and undo work, without image pulls or container starts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from steps.clients.docker import docker
from steps.commands.build_image import ImageBuild, build_image
from steps.commands.deploy.kubernetes import deploy_kubernetes
from steps.commands.deploy.release import Release
from steps.commands.deploy.swarm import deploy_swarm
from steps.local.base_image import ensure_base_image
from steps.local.docker_engine import ensure_engine
from steps.local.kube_cluster import NEVER_READY_MARKER, down, up
from steps.local.registry_server import LocalRegistry
from steps.local.server import free_port
from steps.support import logs
from steps.support.errors import RolledBack
from steps.support.paths import REPO_ROOT
from steps.support.processes import run


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    with contextlib.suppress(RolledBack):
        action()
    return time.perf_counter() - started


def swarm_images(work: Path, registry: LocalRegistry) -> dict[str, str]:
    """v1, v2 (another model version) and broken (exits at start), pushed, by digest."""
    base = ensure_base_image()
    images = {}
    for version in ("1.0.0", "2.0.0"):
        run(
            [
                sys.executable,
                str(REPO_ROOT / "model" / "train.py"),
                "--out",
                str(work / version),
                "--version",
                version,
            ],
            what="training the sample model",
            timeout=300,
        )
        built = build_image(
            ImageBuild(
                model_dir=work / version,
                base_image=base,
                tags=(f"{registry.host}/aiship:{version}",),
            )
        )
        images[version] = built.tags[0]
    broken = run(
        ["docker", "build", "--quiet", "--network", "host", "-"],
        what="docker build",
        timeout=120,
        stdin=f"FROM {images['1.0.0']}\nENV MODEL_DIR=/nonexistent\n",
    )
    broken = broken.stdout.strip()
    docker(["tag", broken, f"{registry.host}/aiship:broken"])
    images["broken"] = f"{registry.host}/aiship:broken"
    pinned = {}
    for name, reference in images.items():
        docker(["push", reference], timeout=600)
        digests = docker(["inspect", "--format", "{{index .RepoDigests 0}}", reference])
        pinned[name] = digests.strip()
    return pinned


def bench_swarm(rounds: int) -> dict[str, list[float]]:
    ensure_engine()
    figures: dict[str, list[float]] = {"update": [], "failed deploy to previous serving": []}
    with tempfile.TemporaryDirectory() as tmp, LocalRegistry(Path(tmp) / "registry") as registry:
        images = swarm_images(Path(tmp), registry)
        service, port = f"aiship-bench-{free_port()}", free_port()
        try:
            deploy_swarm(Release(images["1.0.0"]), service=service, port=port)
            for i in range(rounds):
                target = images["2.0.0" if i % 2 == 0 else "1.0.0"]
                figures["update"].append(
                    timed(
                        lambda t=target: deploy_swarm(
                            Release(t), service=service, port=port, smoke_test=True
                        )
                    )
                )
                figures["failed deploy to previous serving"].append(
                    timed(
                        lambda: deploy_swarm(Release(images["broken"]), service=service, port=port)
                    )
                )
        finally:
            docker(["service", "rm", service], check=False)
    return figures


def digest_image(name: str, repository: str = "127.0.0.1:5000/aiship") -> str:
    return f"{repository}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"


def bench_kubernetes(rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"update": [], "failed deploy to previous serving": []}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "cluster"
        try:
            kubeconfig = Path(up(state, nodes=2).kubeconfig)
            options = {"kubeconfig": kubeconfig, "namespace": "default", "overlay": "staging"}
            deploy_kubernetes(Release(digest_image("v0")), **options)
            broken = digest_image("broken", f"127.0.0.1:5000/aiship-{NEVER_READY_MARKER}")
            for i in range(rounds):
                figures["update"].append(
                    timed(
                        lambda i=i: deploy_kubernetes(Release(digest_image(f"v{i + 1}")), **options)
                    )
                )
                # The rollout counts as failed after --timeout (the manifests' progress deadline
                # is 180 s; CI would see that); a 20 s timeout keeps the bench short.
                figures["failed deploy to previous serving"].append(
                    timed(lambda: deploy_kubernetes(Release(broken), timeout=20, **options))
                )
        finally:
            down(state)
    return figures


def table(target: str, figures: dict[str, list[float]]) -> str:
    rows = [
        f"| {target} | {case} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |"
        for case, v in figures.items()
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logs.configure()
    print("| target | case | median s | min s | max s |\n| --- | --- | ---: | ---: | ---: |")
    print(table("swarm", bench_swarm(args.rounds)), flush=True)
    print(table("kubernetes (kwok)", bench_kubernetes(args.rounds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
