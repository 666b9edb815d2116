"""Release timings on a local swarm and on the local Kubernetes cluster's real node: the cluster's
own start and stop, deploy-to-serving, failed rollouts back to the previous version serving,
requests lost while pods are replaced, what the node costs in memory, and the production canary:
the decision to promoted for a good candidate and to aborted for bad ones, against a plain rolling
update of the same release.

`python -m bench.deploy [--rounds N] [--only swarm|kubernetes|canary] [--pause S]` (as root: it
starts dockerd when none answers, and the node needs root). Every figure is from the same run,
next to its peer or floor: `docker run` of the same image until /v2/health/ready answers (the
container-start floor), the swarm step's own figures, and for the canary the rolling update of the
same v1 -> v2 under the same traffic. Images: model 1.0.0 and 2.0.0 built with the steps' own
`build_image` and pushed with `push_image` into docker-registry on 127.0.0.1; the broken ones
derived from v1 at the registry level (src/aiship/local/release_variants.py, as the tests make
them): a model that does not verify, a server on another port than the probes ask (never ready),
a process that exits after 3 s; and the canary's bad candidates, ready like v1 but bad in use
(model/canary_models.py): 500 to every real digit, 30 ms slower, a skewed prediction mix.
The cluster lives under a temporary folder in /tmp, never the repo's .local; it is stopped at the
end whatever happens. Traffic goes to 127.0.0.1 (the API server's service proxy, the swarm's
port, the docker-run floor) and from there to the pods' addresses inside the node's namespace.

The package, one module a concern: images.py (the release images), measure.py (the figures,
a timed action, memory), floor.py (`docker run`), swarm.py, kubernetes.py, canary.py, report.py.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

from aiship.clients.docker import docker
from aiship.local.docker_engine import ensure_engine
from aiship.local.registry_server import LocalRegistry
from aiship.support import logs

from .canary import bench_canary
from .images import make_images
from .kubernetes import bench_cluster_life, bench_kubernetes
from .measure import Figures
from .report import load, machine, report
from .swarm import bench_swarm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("swarm", "kubernetes", "canary"))
    parser.add_argument(
        "--pause", type=float, default=10.0, help="canary: seconds each step is watched"
    )
    args = parser.parse_args(argv)
    logs.configure()
    header = [
        f"command: python -m bench.deploy {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"started: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {machine()}",
        f"load average before: {load()}",
    ]
    if args.only in (None, "canary"):
        header.append(f"canary: manifests/analysis.yaml, each step's pause {args.pause:g} s")
    figures = Figures()
    engine = ensure_engine()
    try:
        with tempfile.TemporaryDirectory(prefix="aiship-bench-deploy-", dir="/tmp") as tmp:
            work = Path(tmp)
            with LocalRegistry(work / "registry") as registry:
                images = make_images(work, registry, candidates=args.only in (None, "canary"))
                try:
                    if args.only in (None, "swarm"):
                        bench_swarm(images, args.rounds, figures)
                    if args.only in (None, "kubernetes"):
                        bench_cluster_life(work, registry, images, args.rounds, figures)
                        bench_kubernetes(work, registry, images, args.rounds, figures)
                    if args.only in (None, "canary"):
                        bench_canary(work, registry, images, args.rounds, args.pause, figures)
                finally:
                    docker(["rmi", "--no-prune", *images.local_tags], check=False, timeout=120)
    finally:
        if engine.started:
            engine.stop()
    header.append(f"load average after: {load()}")
    print("\n".join(header) + "\n\n" + report(figures), flush=True)
    return 0
