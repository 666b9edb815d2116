"""Releases of the app that fail, derived at the registry from a good one (a new config, one
more layer, the base's layers reused): a model that does not verify, a pod that never gets ready,
a process that crashes after start; and the canary's bad candidates, which get ready but answer
badly. The tests (tests/kubecluster.py) and the deploy bench (bench/deploy/) both make them."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path
from types import ModuleType

import requests

from ..app.card import CARD_FILE, MODEL_FILE
from ..clients.registry import ImageRef, Manifest, RegistryClient, RegistryLogin, sha256_digest
from ..commands.deploy.release import Release
from ..support.labels import LABEL_MODEL_SHA256, LABEL_MODEL_VERSION
from .kube_node.oci_layout import tar_bytes

MODEL_FILES = (MODEL_FILE, CARD_FILE)  # in the image's /model (the Dockerfile's MODEL_DIR)


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
    login: RegistryLogin,
    base: Release,
    good_model: Path,
    folder: Path,
    canary_models: ModuleType,
) -> dict[str, Release]:
    """answers_5xx, slow and skewed: BASE with a bad candidate's model folder laid over its
    /model, the image's labels and the release saying which model it is; answers_4xx: BASE
    taking one row a request (MAX_BATCH_SIZE=1), so it passes its one-row smoke test and
    refuses the traffic's batches, as a release with a stricter request rule does. CANARY_MODELS is
    model/canary_models.py, which writes the candidates' model folders (onnx and scikit-learn):
    the caller imports it when the images are made (like model/train.py, it is the sample
    model's script, not part of the package)."""
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
    releases["answers_4xx"] = derived(login, base, "answers-4xx", env={"MAX_BATCH_SIZE": "1"})
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
