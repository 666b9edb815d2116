"""The image run as production runs it (the engine, base and build fixtures are in tests/)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from aiship.clients.docker import docker
from aiship.support.errors import Unavailable
from aiship.support.ports import free_port
from aiship.support.waiting import wait_for

READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Container:
    name: str
    url: str

    def inspect(self) -> dict:
        return json.loads(docker(["inspect", self.name]))[0]

    def logs(self) -> str:
        """stdout and stderr of the container (the server logs to stderr)."""
        done = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, timeout=30
        )
        return done.stdout + done.stderr

    def wait_health(self, wanted: str, timeout: float) -> str:
        """The HEALTHCHECK status once it is `wanted`, or the last one seen at the deadline."""

        def status() -> str | None:
            seen.append(self.inspect()["State"]["Health"]["Status"])
            return seen[-1] if seen[-1] == wanted else None

        seen: list[str] = []
        with contextlib.suppress(Unavailable):
            wait_for(status, timeout=timeout, what="healthy", interval=0.5)
        return seen[-1]


def image_config(image_id: str) -> dict:
    return json.loads(docker(["image", "inspect", image_id]))[0]


@contextlib.contextmanager
def running_container(image: str) -> Iterator[Container]:
    """The image run as production runs it, on 127.0.0.1 only; removed afterwards, always."""
    port = free_port()
    name = f"aiship-test-{uuid.uuid4().hex[:12]}"
    try:
        docker(
            [
                "run",
                "--detach",
                "--name",
                name,
                "--read-only",
                "--tmpfs",
                "/tmp",
                "--network",
                "host",
                "--user",
                "10001:10001",
                "--env",
                "HOST=127.0.0.1",
                "--env",
                f"PORT={port}",
                "--health-interval",  # the image's own check, polled faster than its 10 s
                "1s",
                image,
            ],
            timeout=60,
        )
        container = Container(name=name, url=f"http://127.0.0.1:{port}")
        wait_ready(container)
        yield container
    finally:
        docker(["rm", "--force", name], timeout=60, check=False)


def wait_ready(container: Container, timeout: float = READY_TIMEOUT) -> None:
    def ready() -> bool | None:
        state = container.inspect()["State"]
        if not state["Running"]:
            pytest.fail(f"container exited ({state['ExitCode']}):\n{container.logs()}")
        with contextlib.suppress(requests.RequestException):  # refused, or slow on a busy machine
            if requests.get(f"{container.url}/v2/health/ready", timeout=2).status_code == 200:
                return True
        return None

    try:
        wait_for(ready, timeout=timeout, what="container not ready", interval=0.3)
    except Unavailable as exc:
        pytest.fail(f"{exc}:\n{container.logs()}")


@pytest.fixture(scope="module")
def container(built_image) -> Iterator[Container]:
    with running_container(built_image.image_id) as running:
        yield running
