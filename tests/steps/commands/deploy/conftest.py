"""Images for release tests: the app with model 1.0.0 and 2.0.0, and one that never gets ready,
all pushed to a local registry so they can be deployed by digest."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import pytest

from steps.clients.docker import docker


@dataclass(frozen=True)
class ReleaseImages:
    v1: str  # REPOSITORY@sha256:... serving model version 1.0.0
    v2: str  # the same code, model version 2.0.0
    broken: str  # exits at start (its MODEL_DIR does not exist): never becomes ready


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory, docker_engine):
    from steps.local.registry_server import LocalRegistry

    registry = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    yield registry
    registry.stop()


def push(image_id: str, reference: str) -> str:
    """Tag and push; return REPOSITORY@sha256:... as the registry stored it."""
    docker(["tag", image_id, reference])
    docker(["push", reference], timeout=300)
    digests = docker(["inspect", "--format", "{{json .RepoDigests}}", reference])
    repository = reference.rsplit(":", 1)[0]
    return next(d for d in json.loads(digests) if d.startswith(repository + "@"))


@pytest.fixture(scope="session")
def release_images(image_builder, trained_model_dir, tmp_path_factory, local_registry):
    import train

    repository = f"{local_registry.host}/aiship"
    v2_model = tmp_path_factory.mktemp("model-v2")
    train.write_model(v2_model, name="digits", version="2.0.0")
    v1 = image_builder(trained_model_dir)
    v2 = image_builder(v2_model)
    broken = subprocess.run(
        ["docker", "build", "--quiet", "--network", "host", "-"],
        input=f"FROM {v1.image_id}\nENV MODEL_DIR=/nonexistent\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    return ReleaseImages(
        v1=push(v1.image_id, f"{repository}:v1"),
        v2=push(v2.image_id, f"{repository}:v2"),
        broken=push(broken, f"{repository}:broken"),
    )
