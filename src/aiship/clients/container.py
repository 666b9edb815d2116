"""An image run the way production runs it, on this machine, for a step to talk to.

Read-only root, a tmpfs /tmp, the image's non-root user, no capabilities, no privilege
escalation; it listens on 127.0.0.1 only (the host's network, so no bridge or NAT is needed) and
is removed afterwards, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests

from ..support.errors import StepError, Unavailable
from ..support.ports import free_port
from ..support.processes import run
from ..support.waiting import wait_for
from .docker import docker, docker_path

HOST = "127.0.0.1"
READY_TIMEOUT = 90.0
LOG_LINES = 5


@contextlib.contextmanager
def running_image(
    image: str, *, config: Path | None = None, ready_timeout: float = READY_TIMEOUT
) -> Iterator[str]:
    """Run IMAGE (pulled with the logins in CONFIG, a DOCKER_CONFIG folder, when not here) on a
    free port of 127.0.0.1; yield its base URL once /v2/health/ready answers 200."""
    port = free_port()
    name = f"aiship-eval-{uuid.uuid4().hex[:12]}"
    prefix = ["--config", str(config)] if config else []
    try:
        docker(
            [
                *prefix,
                "run",
                *("--detach", "--name", name, "--pull", "missing"),
                *("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"),  # noqa: S108
                *("--security-opt", "no-new-privileges", "--network", "host"),
                *("--env", f"HOST={HOST}", "--env", f"PORT={port}"),
                image,
            ],
            timeout=600,  # a pull of the image's layers, when it is not here yet
        )
        url = f"http://{HOST}:{port}"
        wait_for(
            lambda: _ready(name, url),
            timeout=ready_timeout,
            what=f"{image} did not answer {url}/v2/health/ready",
            interval=0.3,
        )
        yield url
    finally:
        docker(["rm", "--force", name], timeout=60, check=False)


def _ready(name: str, url: str) -> bool | None:
    state = json.loads(docker(["inspect", "--format", "{{json .State}}", name], timeout=30))
    if not state.get("Running"):
        raise StepError(
            f"the image exited with code {state.get('ExitCode')} before it was ready: "
            f"{_last_lines(name)}"
        )
    with contextlib.suppress(requests.RequestException):
        if requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
            return True
    return None


def _last_lines(name: str) -> str:
    """The container's last lines of output (the service logs to stderr), joined into one."""
    with contextlib.suppress(Unavailable):
        done = run(
            [docker_path(), "logs", "--tail", str(LOG_LINES), name], what="docker logs", timeout=30
        )
        lines = (done.stdout + done.stderr).splitlines()
        return " | ".join(line.strip() for line in lines if line.strip()) or "(no output)"
    return "(no logs)"
