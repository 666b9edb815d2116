"""The swarm benchmark: updates, and failed updates back to the previous version serving."""

from __future__ import annotations

from aiship.clients.docker import docker
from aiship.commands.deploy.swarm import deploy_swarm
from aiship.support.ports import free_port

from .images import Images
from .measure import Figures, timed


def bench_swarm(images: Images, rounds: int, figures: Figures) -> None:
    service, port = f"aiship-bench-{free_port()}", free_port()
    options = {"service": service, "port": port}
    try:
        deploy_swarm(images.v1, **options)
        for i in range(rounds):
            target = images.v2 if i % 2 == 0 else images.v1
            timed(
                figures,
                "swarm: update (smoke test included)",
                lambda t=target: deploy_swarm(t, smoke_test=True, **options),
                fails=False,
            )
            for kind in ("bad_model", "crashing"):
                timed(
                    figures,
                    f"swarm: failed update ({kind}) to previous serving",
                    lambda k=kind: deploy_swarm(images.release(k), smoke_test=True, **options),
                    fails=True,
                )
    finally:
        docker(["service", "rm", service], check=False)
