"""A Docker engine and base image made by the steps' own functions, and the image built once."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from steps.dockercli import docker
from steps.errors import Unavailable
from steps.image_build import BuiltImage, ImageBuild, build_image
from steps.local.base_image import LOCAL_BASE_IMAGE, ensure_base_image
from steps.local.docker_engine import ensure_engine
from steps.waiting import wait_for

REVISION = "0123456789abcdef0123456789abcdef01234567"
SOURCE = "https://example.org/aiship"
READY_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def docker_engine():
    """The engine that answers, or dockerd started for this session (and stopped after it)."""
    engine = ensure_engine(timeout=60)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    ensure_base_image()
    return LOCAL_BASE_IMAGE


@pytest.fixture(scope="session")
def image_builder(base_image):
    """build(model_dir, root=..., revision=...) -> BuiltImage under a unique tag, untagged after."""
    tags: list[str] = []

    def build(model_dir: Path, **options) -> BuiltImage:
        tag = f"aiship-test:{uuid.uuid4().hex[:12]}"
        tags.append(tag)
        request = ImageBuild(
            model_dir=model_dir,
            base_image=base_image,
            tags=(tag,),
            revision=options.pop("revision", REVISION),
            source=SOURCE,
        )
        return build_image(request, **options)

    yield build
    # --no-prune keeps the untagged parents: they are the build cache of the next session.
    docker(["rmi", "--no-prune", *tags], timeout=60, check=False)


@pytest.fixture(scope="session")
def built_image(image_builder, trained_model_dir) -> BuiltImage:
    return image_builder(trained_model_dir)


@dataclass(frozen=True)
class Container:
    name: str
    url: str

    def inspect(self) -> dict:
        return json.loads(docker(["inspect", self.name]))[0]

    def logs(self) -> str:
        """stdout and stderr of the container (gunicorn logs to stderr)."""
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        with contextlib.suppress(requests.ConnectionError):
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
