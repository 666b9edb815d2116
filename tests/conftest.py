"""Fixtures shared by every test package: the sample model, and a real server to serve it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from aiship.clients.docker import docker
from aiship.commands.build_image import BuiltImage, ImageBuild, build_image
from aiship.local.base_image import usable_base_image
from aiship.local.docker_engine import engine_dir, ensure_engine, stop_engine
from aiship.support.ports import free_port
from tests.contracts.held import Held
from tests.kubecluster import (  # noqa: F401  (fixtures)
    kube_cluster,
    kube_namespace,
    node_registry,
    release_images,
)
from tests.registries import acr, auth_registry, local_image, registry  # noqa: F401
from tests.repo import REPO_ROOT
from tests.stores import (  # noqa: F401
    aws_env,
    azure_env,
    azurite,
    big_model_dir,
    moto_server,
    store,
)

sys.path.insert(0, str(REPO_ROOT / "model"))

import train  # model/train.py, the data scientist's script (not a package)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> Path:
    """model.onnx + model.json from model/train.py; shared, so never modify it."""
    out = tmp_path_factory.mktemp("model")
    train.write_model(out, name="digits", version="1.0.0")
    return out


@pytest.fixture
def model_dir(trained_model_dir, tmp_path) -> Path:
    """A private copy of the sample model that a test may change."""
    copy = tmp_path / "model"
    shutil.copytree(trained_model_dir, copy)
    return copy


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def stop(self) -> int:
        return stop(self.process)


@contextlib.contextmanager
def running_server(model_dir: Path, log_path: Path, **env: str) -> Iterator[Server]:
    """`python -m aiship.app serve` in its own process group; SIGTERM, then SIGKILL, after."""
    port = free_port()
    environment = {**os.environ, "APP_REVISION": "test-revision", **env}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiship.app",
                "serve",
                "--model-dir",
                str(model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(process)


def wait_ready(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log_path.read_text()}")
        with contextlib.suppress(requests.RequestException):  # refused, or slow when busy
            if requests.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"server not ready in {timeout}s:\n{server.log_path.read_text()}")


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def serve_model():
    """`with serve_model(model_dir, log_path, **env) as server:` the real server, `app serve`."""
    return running_server


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for 'service down' cases)."""
    return free_port()


@dataclass
class HttpsFake:
    """A local HTTPS server (pytest-httpserver) with its own CA, for the Azure SDKs to call."""

    server: object  # pytest_httpserver.HTTPServer
    ca_pem: Path

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")


@pytest.fixture(scope="session")
def https_fake_server(tmp_path_factory) -> Iterator[HttpsFake]:
    import trustme
    from pytest_httpserver import HTTPServer

    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield HttpsFake(server, ca_pem)
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def https_fake(https_fake_server) -> Iterator[HttpsFake]:
    """The session's HTTPS fake of Resource Manager, with no expectations left over from other
    tests; every exchange a test had with it is held to ARM's official descriptions after it."""
    https_fake_server.server.clear()
    yield https_fake_server
    held = Held("arm")
    for request, response in https_fake_server.server.log:
        held.observe(request, response)
    https_fake_server.server.clear()
    assert held.violations == [], "the fake left Resource Manager's REST descriptions"


@pytest.fixture
def tokens(https_fake_server, monkeypatch):
    """A GitHub job's OIDC token service and Entra ID (tests/entra.py) on the session's HTTPS
    fake, trusted through REQUESTS_CA_BUNDLE; their assertions live one second."""
    import re

    from tests.entra import FakeTokenService

    server = https_fake_server.server
    server.clear()
    fake = FakeTokenService(https_fake_server.url)
    server.expect_request(re.compile(".*")).respond_with_handler(fake)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_fake_server.ca_pem))
    yield fake
    server.clear()


# Docker: the engine, the base image and builds of the app image, made by the steps' own functions.


@pytest.fixture(scope="session")
def image_identity() -> dict[str, str]:
    """The git revision and source URL that test builds record (labels, /version)."""
    return {
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "source": "https://example.org/aiship",
    }


@pytest.fixture(scope="session")
def docker_engine():
    """The engine that answers, or dockerd started for this session; stopped by the last test
    session that uses it. Two sessions on one machine (a helper's tests beside the suite) share
    it: each holds a shared lock on a file beside the engine's state, and only the session that
    can take the lock alone at its end stops an engine a test session started."""
    users = engine_dir() / "test-sessions.lock"
    users.parent.mkdir(parents=True, exist_ok=True)
    started_by_tests = engine_dir() / "started-by-tests"
    with open(users, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        engine = ensure_engine(timeout=60)
        if engine.started:
            started_by_tests.touch()
        yield engine
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # from shared: no one else holds it
        except BlockingIOError:
            return  # another session still uses the engine; the last one out stops it
        if started_by_tests.exists():
            started_by_tests.unlink()
            stop_engine(engine.state_dir)


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    return usable_base_image()  # BASE_IMAGE where CI can pull it, else debootstrap's


@pytest.fixture(scope="session")
def image_builder(base_image, image_identity):
    """build(model_dir, tag=..., root=..., revision=...) -> BuiltImage under TAG (default: a
    unique one), untagged after."""
    tags: list[str] = []

    def build(model_dir: Path, tag: str | None = None, **options) -> BuiltImage:
        tag = tag or f"aiship-test:{uuid.uuid4().hex[:12]}"
        tags.append(tag)
        request = ImageBuild(
            model_dir=model_dir,
            base_image=base_image,
            tags=(tag,),
            revision=options.pop("revision", image_identity["revision"]),
            source=image_identity["source"],
        )
        return build_image(request, **options)

    yield build
    # --no-prune keeps the untagged parents: they are the build cache of the next session.
    docker(["rmi", "--no-prune", *tags], timeout=60, check=False)


@pytest.fixture(scope="session")
def built_image(image_builder, trained_model_dir) -> BuiltImage:
    return image_builder(trained_model_dir)
