"""The swarm target: a real, running service on a local Docker swarm, same semantics as Kubernetes.

The service uses the host's network and listens on 127.0.0.1:PORT. Two containers cannot hold the
same host port, so an update stops the old task before starting the new one (a short gap that a
multi-node cluster does not have); swarm watches the new task's health check and rolls back by
itself when it fails.
"""

from __future__ import annotations

import json
import logging

from ...clients.docker import docker, ensure_swarm
from ...support.errors import RolledBack, StepError, Unavailable
from ...support.waiting import wait_for
from .release import DeployResult, Release, smoke_failure

log = logging.getLogger(__name__)

# Passed on create and on every update, so that a service always has exactly these settings.
SERVICE_SETTINGS = (
    "--update-order",
    "stop-first",
    "--rollback-order",
    "stop-first",
    "--update-failure-action",
    "rollback",
    "--update-monitor",
    "10s",
    "--stop-grace-period",
    "25s",  # the server drains for 20 s (app/server.py DRAIN_SECONDS)
    "--health-interval",
    "2s",
    "--health-timeout",
    "2s",
    "--health-retries",
    "3",
    "--health-start-period",
    "30s",
)


def deploy_swarm(
    release: Release,
    *,
    service: str,
    port: int,
    timeout: float = 300,
    smoke_test: bool = False,
    smoke_url: str | None = None,
) -> DeployResult:
    ensure_swarm()
    current = inspect_service(service)
    previous_image = current["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] if current else None
    url = smoke_url or f"http://127.0.0.1:{port}"
    if previous_image == release.image and update_state(current) not in ROLLED_BACK:
        log.info("service %s already runs %s: nothing to do", service, release.image)
        return DeployResult("swarm", release.image, "unchanged", previous_image, url)

    labels = {"aiship.revision": release.revision, "aiship.model-version": release.model_version}
    if current is None:
        failure = create(service, port, release, labels, timeout)
    else:
        failure = update(service, release, labels, timeout)
    if failure is None and smoke_test:
        failure = smoke_failure(url, release.build)
    if failure is not None:
        for line in diagnose(service):
            log.error("  %s", line)
        raise RolledBack(
            f"the rollout of {release.image} to {service} failed ({failure}); "
            f"{roll_back(service, current, timeout)}"
        )
    log.info("service %s runs %s on %s", service, release.image, url)
    return DeployResult("swarm", release.image, "deployed", previous_image, url)


ROLLED_BACK = ("rollback_started", "rollback_paused", "rollback_completed")


def inspect_service(service: str) -> dict | None:
    out = docker(["service", "inspect", service], timeout=30, check=False)
    services = json.loads(out or "[]")
    return services[0] if services else None


def update_state(service: dict | None) -> str:
    return ((service or {}).get("UpdateStatus") or {}).get("State", "")


def create(
    service: str, port: int, release: Release, labels: dict[str, str], timeout: float
) -> str | None:
    """Create the service, then watch its first task: healthy and running, or failed."""
    docker(
        [
            "service",
            "create",
            "--name",
            service,
            "--detach",
            "--network",
            "host",
            "--replicas",
            "1",
            "--env",
            "HOST=127.0.0.1",
            "--env",
            f"PORT={port}",
            "--read-only",
            "--mount",
            "type=tmpfs,destination=/tmp",
            *SERVICE_SETTINGS,
            *label_flags("--label", labels),
            release.image,
        ],
        timeout=60,
    )
    try:
        outcome = wait_for(
            lambda: first_task_outcome(service),
            timeout=timeout,
            what=f"service {service} did not become healthy",
            interval=1,
        )
    except Unavailable as exc:
        return str(exc)
    return None if outcome is True else outcome


def first_task_outcome(service: str) -> bool | str | None:
    """True once a task runs (swarm counts a task running only when its health check passes),
    why once one has failed, None while they are still starting."""
    lines = docker(
        ["service", "ps", service, "--no-trunc", "--format", "{{json .}}"], timeout=30
    ).splitlines()
    for task in map(json.loads, lines):
        state = task["CurrentState"].split(" ")[0]
        if state == "Running" and task["DesiredState"] == "Running":
            return True
        if state in ("Failed", "Rejected", "Complete", "Shutdown") and task["Error"]:
            return f"the service did not start: {task['Error']}"
    return None


def update(service: str, release: Release, labels: dict[str, str], timeout: float) -> str | None:
    try:
        docker(
            [
                "service",
                "update",
                "--detach=false",
                "--image",
                release.image,
                *SERVICE_SETTINGS,
                *label_flags("--label-add", labels),
                service,
            ],
            timeout=timeout,
        )
    except (StepError, Unavailable) as exc:
        return f"the update did not finish: {exc}"
    # `service update` exits 0 after swarm's own rollback too: the service's state tells.
    after = inspect_service(service) or {}
    if update_state(after) in ROLLED_BACK:
        return f"swarm rolled it back: {after['UpdateStatus'].get('Message', '')}"
    return None


def label_flags(flag: str, labels: dict[str, str]) -> list[str]:
    return [part for key, value in labels.items() for part in (flag, f"{key}={value}")]


def roll_back(service: str, previous: dict | None, timeout: float) -> str:
    """Put back what ran before; with nothing before, remove the new service."""
    if previous is None:
        docker(["service", "rm", service], timeout=60, check=False)
        return "it was the first deployment, so the service was removed"
    image = previous["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    current = inspect_service(service) or {}
    if (
        current.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Image")
        != image
    ):
        docker(["service", "rollback", "--detach=false", service], timeout=timeout)
    return f"rolled back to {image}, which serves again"


def diagnose(service: str) -> list[str]:
    """The service's recent tasks and their errors, and the last lines it logged."""
    tasks = docker(
        [
            "service",
            "ps",
            service,
            "--no-trunc",
            "--format",
            "task {{.Name}} {{.Image}}: {{.CurrentState}} {{.Error}}",
        ],
        timeout=30,
        check=False,
    ).splitlines()[:5]
    logs = docker(
        ["service", "logs", "--raw", "--tail", "5", service], timeout=30, check=False
    ).splitlines()
    return tasks + [f"log: {line}" for line in logs[-5:]]
