"""The `kube_cluster` fixture: the local cluster with its real node, and the images it runs.

The cluster is the code behind `python -m aiship local cluster up` (a control plane and one real
kubelet node), started once per session and stopped at its end. Its node pulls from a registry of
the session's own, into which `release_images` pushes the app's image and variants that fail in
the ways a release really fails: a model that does not verify, a pod that never gets ready, a
process that crashes after start; and canary candidates, which get ready but answer badly. Use
them from a conftest:
`from tests.kubecluster import kube_cluster, kube_namespace, node_registry, release_images`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from aiship.app.card import CARD_FILE, MODEL_FILE
from aiship.clients.kubectl import kubectl_path
from aiship.clients.registry import (
    ImageRef,
    Manifest,
    RegistryClient,
    RegistryLogin,
    sha256_digest,
)
from aiship.commands.deploy.release import Release
from aiship.commands.push_image import push_image
from aiship.local.kube_cluster import down, up
from aiship.local.kube_node import tar_bytes
from aiship.local.registry_server import LocalRegistry
from aiship.local.traffic import Traffic, service_traffic
from aiship.support.labels import LABEL_MODEL_SHA256, LABEL_MODEL_VERSION
from aiship.support.processes import last_line

REPOSITORY = "aiship"
MODEL_FILES = (MODEL_FILE, CARD_FILE)  # in the image's /model (the Dockerfile's MODEL_DIR)


@dataclass(frozen=True)
class KubeCluster:
    """The session's cluster (its kubeconfig and state) and the registry its node pulls from."""

    kubeconfig: Path
    state_dir: Path
    registry: str  # HOST:PORT

    def kubectl(
        self, *args: str, timeout: float = 60.0, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        command = [str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"`kubectl {' '.join(args)}` failed: {last_line(done.stderr)}")
        return done

    def service_traffic(self, namespace: str, service: str = REPOSITORY, **limits) -> Traffic:
        """Predictions of the digits model through the API server's proxy of the Service."""
        return service_traffic(self.kubeconfig, namespace, service, "digits", **limits)


@pytest.fixture(scope="session")
def node_registry(tmp_path_factory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("node-registry")) as registry:
        yield registry


@pytest.fixture(scope="session")
def kube_cluster(request, tmp_path_factory, node_registry) -> KubeCluster:
    state_dir = tmp_path_factory.mktemp("kube-cluster")
    request.addfinalizer(lambda: down(state_dir))  # before up: a half-started one is stopped too
    result = up(state_dir, registry_ports=(node_registry.port,))
    return KubeCluster(Path(result.kubeconfig), state_dir, node_registry.host)


@pytest.fixture
def kube_namespace(kube_cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards; its pods at once, so that the one
    node's CPU is free for the next test."""
    name = f"aiship-test-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl(
        "-n",
        name,
        "delete",
        "deployments,replicasets,pods",
        "--all",
        "--grace-period=0",
        "--force",
        timeout=90,
        check=False,
    )
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass(frozen=True)
class ReleaseImages:
    """Releases of the app in the node's registry, each pinned by digest."""

    v1: Release  # model digits 1.0.0
    v2: Release  # model digits 2.0.0, another code revision
    bad_model: Release  # its model.onnx does not match model.json: the app refuses to start
    never_ready: Release  # serves on another port than the probes ask: never ready
    crashing: Release  # starts, then exits a few seconds later, again and again
    # Canary candidates (tests/canary_models.py): ready like v1, bad only in use.
    answers_5xx: Release  # 500 to every real digit
    slow: Release  # v1's answers, each some 30 ms later
    skewed: Release  # about half of its answers are "1"


@pytest.fixture(scope="session")
def release_images(
    node_registry, image_builder, trained_model_dir, tmp_path_factory
) -> ReleaseImages:
    import train

    login = RegistryLogin(node_registry.host)

    def pushed(model_dir: Path, revision: str) -> Release:
        card = json.loads((model_dir / "model.json").read_text())
        built = image_builder(model_dir, revision=revision)
        target = ImageRef.parse(f"{node_registry.host}/{REPOSITORY}:{revision[:12]}")
        digest = push_image(login, target, source=built.tags[0]).digest
        return Release(f"{target.name}@{digest}", revision, card["version"], card["sha256"])

    model_v2 = tmp_path_factory.mktemp("model-v2")
    train.write_model(model_v2, name="digits", version="2.0.0")
    v1, v2 = pushed(trained_model_dir, "1" * 40), pushed(model_v2, "2" * 40)
    candidates = canary_releases(login, v1, trained_model_dir, tmp_path_factory.mktemp("canary"))
    return ReleaseImages(v1=v1, v2=v2, **broken_releases(login, v1), **candidates)


def broken_releases(login: RegistryLogin, base: Release) -> dict[str, Release]:
    """bad_model, never_ready and crashing: BASE changed at the registry in the ways a release
    really fails."""
    junk = hashlib.sha256(b"not the model").digest() * 8
    crash = ["python", "-c", "import time; time.sleep(3); raise SystemExit('crashed')"]
    return {
        "bad_model": derived(login, base, "bad-model", files={"model/model.onnx": junk}),
        "never_ready": derived(login, base, "never-ready", env={"PORT": "8081"}),
        "crashing": derived(login, base, "crashing", cmd=crash),
    }


def canary_releases(
    login: RegistryLogin, base: Release, good_model: Path, folder: Path
) -> dict[str, Release]:
    """answers_5xx, slow and skewed: BASE with a bad candidate's model folder laid over its
    /model, the image's labels and the release saying which model it is."""
    from tests import canary_models  # onnx and scikit-learn: only when the images are made

    writers = {
        "answers_5xx": canary_models.write_failing,
        "slow": canary_models.write_slow,
        "skewed": canary_models.write_skewed,
    }
    releases = {}
    for name, write in writers.items():
        card = write(folder / name, good_model)
        files = {f"model/{file}": (folder / name / file).read_bytes() for file in MODEL_FILES}
        labels = {LABEL_MODEL_VERSION: card.version, LABEL_MODEL_SHA256: card.sha256}
        image = derived(login, base, name.replace("_", "-"), files=files, labels=labels)
        releases[name] = dataclasses.replace(
            image, model_version=card.version, model_sha256=card.sha256
        )
    return releases


def derived(
    login: RegistryLogin,
    base: Release,
    tag: str,
    *,
    env: dict[str, str] | None = None,
    cmd: list[str] | None = None,
    files: dict[str, bytes] | None = None,
    labels: dict[str, str] | None = None,
) -> Release:
    """BASE with other environment variables, another command, files or labels laid over it: a
    new config (and layer), the base's layers reused, pushed as REPOSITORY:TAG; pinned by
    digest."""
    client = RegistryClient(login)
    base_ref = ImageRef.parse(base.image)
    manifest = client.manifest(base_ref.repository, base_ref.digest).json()
    config = json.loads(client.blob(base_ref.repository, manifest["config"]["digest"]))
    if env:
        kept = [e for e in config["config"]["Env"] if e.split("=", 1)[0] not in env]
        config["config"]["Env"] = kept + [f"{k}={v}" for k, v in env.items()]
    if cmd:
        config["config"]["Cmd"] = cmd
    if labels:
        config["config"]["Labels"] = {**(config["config"].get("Labels") or {}), **labels}
    if files:
        layer_tar = tar_bytes({name: (data, 0o644) for name, data in files.items()})
        layer = gzip.compress(layer_tar, mtime=0)
        config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(layer_tar).hexdigest())
        digest = _upload(login, base_ref.repository, layer)
        manifest["layers"].append({**manifest["layers"][-1], "digest": digest, "size": len(layer)})
    config_bytes = json.dumps(config).encode()
    manifest["config"]["digest"] = _upload(login, base_ref.repository, config_bytes)
    manifest["config"]["size"] = len(config_bytes)
    body = json.dumps(manifest).encode()
    pushed = Manifest(sha256_digest(body), manifest["mediaType"], body)
    digest = client.put_manifest(base_ref.repository, tag, pushed)
    return Release(
        f"{base_ref.name}@{digest}", base.revision, base.model_version, base.model_sha256
    )


def _upload(login: RegistryLogin, repository: str, blob: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    started = requests.post(f"{login.url}/v2/{repository}/blobs/uploads/", timeout=30)
    started.raise_for_status()
    location = started.headers["Location"]
    if location.startswith("/"):
        location = login.url + location
    separator = "&" if "?" in location else "?"
    done = requests.put(f"{location}{separator}digest={digest}", data=blob, timeout=60)
    done.raise_for_status()
    return digest
