"""deploy --target swarm: real containers on a real one-node swarm, rolled back when they fail."""

from __future__ import annotations

import pytest
import requests

from aiship.clients.docker import docker, leave_swarm
from aiship.commands.deploy.release import Release
from aiship.commands.deploy.swarm import deploy_swarm, inspect_service
from aiship.support.errors import ConfigError, RolledBack

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def swarm(docker_engine):
    """A one-node swarm for this module; left again if it was not one before."""
    was_active = docker(["info", "--format", "{{.Swarm.LocalNodeState}}"]).strip() == "active"
    yield
    if not was_active:
        leave_swarm()


@pytest.fixture
def service(swarm, closed_port):
    name = f"aiship-test-{closed_port}"
    yield name, closed_port
    docker(["service", "rm", name], timeout=60, check=False)


def serving(port: int) -> dict:
    return requests.get(f"http://127.0.0.1:{port}/version", timeout=5).json()


def running_image(name: str) -> str:
    return inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


def test_deploy_update_no_op_and_automatic_rollback(service, release_images):
    name, port = service
    first = deploy_swarm(
        release_images.v1,
        service=name,
        port=port,
        smoke_test=True,
        timeout=120,
    )
    assert (first.result, first.previous_image) == ("deployed", None)
    assert serving(port)["model"]["version"] == "1.0.0"

    again = deploy_swarm(release_images.v1, service=name, port=port, timeout=120)
    assert again.result == "unchanged"

    update = deploy_swarm(
        release_images.v2,
        service=name,
        port=port,
        smoke_test=True,
        timeout=120,
    )
    assert (update.result, update.previous_image) == ("deployed", release_images.v1.image)
    assert serving(port)["model"]["version"] == "2.0.0"

    with pytest.raises(RolledBack, match=r"rolled back to \S+, which serves again"):
        deploy_swarm(release_images.bad_model, service=name, port=port, timeout=120)
    assert running_image(name) == release_images.v2.image
    assert serving(port)["model"]["version"] == "2.0.0"


def test_a_failed_smoke_test_rolls_back(service, release_images, closed_port):
    name, port = service
    deploy_swarm(release_images.v1, service=name, port=port, timeout=120)
    with pytest.raises(RolledBack, match="smoke test"):
        deploy_swarm(
            release_images.v2,
            service=name,
            port=port,
            timeout=120,
            smoke_url=f"http://127.0.0.1:{closed_port + 1}",
            smoke_test=True,
        )
    assert running_image(name) == release_images.v1.image
    assert serving(port)["model"]["version"] == "1.0.0"


def test_a_first_deploy_that_fails_leaves_nothing(service, release_images):
    name, port = service
    with pytest.raises(RolledBack, match="first deployment"):
        deploy_swarm(release_images.bad_model, service=name, port=port, timeout=45)
    assert inspect_service(name) is None


def test_a_tag_is_refused():
    with pytest.raises(ConfigError, match="not pinned by digest"):
        Release("127.0.0.1:5000/aiship:latest")
