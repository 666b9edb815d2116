"""Real local stand-ins for the model stores: Azurite, moto in server mode, a folder; the
`store` fixture runs a test once on each. Fixtures for tests/steps (see its conftest.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from aiship.app.card import file_sha256, read_card, write_card
from aiship.clients.stores import open_model_store
from aiship.commands.model_store import fetch_model, publish_model
from aiship.local.azurite import Azurite
from aiship.support.ports import free_port
from aiship.support.progress import Progress
from aiship.support.waiting import wait_for

BIG_MODEL_BYTES = 64 << 20


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    """One in-memory Azurite for the session; tests use containers of their own."""
    with Azurite(log_path=tmp_path_factory.mktemp("azurite") / "azurite.log") as server:
        yield server


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[MotoServer]:
    """`python -m moto.server` on 127.0.0.1, stopped after the session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = MotoServer(f"http://127.0.0.1:{port}", process)
    try:
        wait_for(lambda: _answers(server), timeout=30, what="moto server did not answer")
        yield server
    finally:
        server.stop()


def _answers(server: MotoServer) -> bool | None:
    if server.process.poll() is not None:
        raise RuntimeError(f"moto server exited with code {server.process.returncode}")
    try:
        requests.get(f"{server.url}/moto-api/", timeout=1)
    except requests.ConnectionError:
        return None
    return True


@pytest.fixture
def aws_env(moto_server, monkeypatch) -> dict[str, str]:
    """boto3's own configuration pointed at moto; instance metadata is never asked."""
    env = {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture
def azure_env(azurite, monkeypatch) -> dict[str, str]:
    """Azurite's connection string as the credential; no SAS from the environment."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}


@dataclass
class StoreUnderTest:
    """A fresh, empty store; `put` writes an object behind the store's back (to damage it)."""

    kind: str
    url: str
    put: Callable[[str, bytes], None]
    env: dict[str, str]


def azure_store(azurite: Azurite, env: dict[str, str]) -> StoreUnderTest:
    from azure.storage.blob import BlobServiceClient

    name = f"models-{uuid.uuid4().hex[:12]}"
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string
    ).get_container_client(name)
    container.create_container()

    def put(key: str, data: bytes) -> None:
        container.upload_blob(key, data, overwrite=True)

    return StoreUnderTest("azure", f"{azurite.account_url}/{name}", put, env)


def s3_store(env: dict[str, str]) -> StoreUnderTest:
    import boto3

    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data)

    return StoreUnderTest("s3", f"s3://{bucket}", put, env)


def folder_store(root: Path) -> StoreUnderTest:
    root.mkdir()

    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return StoreUnderTest("folder", str(root), put, {})


@pytest.fixture(params=["azure", "s3", "folder"])
def store(request, tmp_path) -> StoreUnderTest:
    """Each test that takes `store` runs once per backend, on a store of its own."""
    if request.param == "azure":
        return azure_store(request.getfixturevalue("azurite"), request.getfixturevalue("azure_env"))
    if request.param == "s3":
        return s3_store(request.getfixturevalue("aws_env"))
    return folder_store(tmp_path / "store")


def padded_model(out: Path, template: Path, size: int, seed: bytes = b"") -> Path:
    """model.onnx of `size` random bytes with a model.json whose sha256 matches them (and no
    golden set)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.onnx", "wb") as f:
        f.write(seed)
        remaining = size - len(seed)
        while remaining > 0:
            chunk = os.urandom(min(remaining, 4 << 20))
            f.write(chunk)
            remaining -= len(chunk)
    card = dataclasses.replace(
        read_card(template), sha256=file_sha256(out / "model.onnx"), golden=None
    )
    write_card(out, card)
    return out


@pytest.fixture(scope="session")
def big_model_dir(trained_model_dir, tmp_path_factory) -> Path:
    """A 64 MiB model (random bytes, matching model.json): big enough to stop mid-download."""
    return padded_model(tmp_path_factory.mktemp("big"), trained_model_dir, BIG_MODEL_BYTES)


# Publish and fetch through the step functions, quietly (no progress lines)


def quiet(label: str) -> Progress:
    return Progress(label, tty=False)


def publish(url: str, model_dir: Path, version: str | None = None, **options):
    return publish_model(open_model_store(url, **options), model_dir, version, progress=quiet)


def fetch(url: str, dest: Path, version: str = "latest", name: str = "digits", **options):
    return fetch_model(open_model_store(url, **options), name, dest, version, progress=quiet)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (hidden temp files included) with its bytes."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")}
