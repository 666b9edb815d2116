"""`local up|status|run|down`: the whole pipeline on one machine, through the real command line.

The tests share one stack and run in file order, as a developer would: up, a first release, a no-op
rerun, a new model version, two failures in the CI stage that leave the release serving, down.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest
import requests
import train

from aiship.app.card import MODEL_FILE, file_sha256, write_card
from aiship.clients.docker import docker
from aiship.local.base_image import LOCAL_BASE_IMAGE
from aiship.local.stack import port_taken

DEV_STORAGE = {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
STEP_LINE = re.compile(r"^==> (\S+(?: \S+)?)\s+(\d+\.\d) s", re.MULTILINE)


pytestmark = pytest.mark.docker


def test_up_is_idempotent_and_status_shows_every_component(local_stack):
    before = local_stack.record()
    again = local_stack.local(
        "up",
        *("--azurite-port", str(local_stack.azurite_port)),
        *("--registry-port", str(local_stack.registry_port)),
    )
    assert again.returncode == 0, again.stderr
    assert again.outputs["started"] == ""
    assert "already up" in again.stderr
    assert local_stack.record()["azurite"]["pid"] == before["azurite"]["pid"]
    assert local_stack.record()["registry"]["pid"] == before["registry"]["pid"]

    status = local_stack.local("status")
    assert status.returncode == 0, status.stderr
    assert status.outputs["healthy"] == "true"
    for name, address in (
        ("engine", "unix://"),
        ("swarm", "127.0.0.1:2377"),
        ("base_image", os.environ.get("BASE_IMAGE", "").strip() or LOCAL_BASE_IMAGE),
        ("azurite", f"http://127.0.0.1:{local_stack.azurite_port}/devstoreaccount1/models"),
        ("registry", f"http://127.0.0.1:{local_stack.registry_port}"),
    ):
        assert re.search(rf"{name}\s+{re.escape(address)}\S*\s+healthy", status.stderr), name


def test_without_a_terminal_or_approve_the_release_is_refused_at_once(local_stack):
    refused = local_stack.run()
    assert refused.returncode == 2
    assert refused.error_lines == [
        "error: the release needs approval and there is no terminal to ask on: "
        "pass --approve to approve it in advance"
    ]
    assert "==>" not in refused.stderr  # not one step ran
    assert not (local_stack.state_dir / "cluster").exists()


def test_run_releases_the_sample_model_and_a_second_run_is_up_to_date(local_stack):
    first = local_stack.run("--approve")
    assert first.returncode == 0, first.stderr
    steps = [name for name, _ in STEP_LINE.findall(first.stderr)]
    assert steps == [
        "local up",
        "sample model",
        "fetch-model",
        "build-image",
        "push-image",
        "verify-push",
        "evaluate-model",
        "attest-image",
        "promote-image",
        "resolve-image",
        "verify-image",
        "cluster up",
        "deploy staging",
        "release-summary",
        "approve",
        "deploy production",
    ]
    assert "published the sample model digits 1.0.0" in first.stderr
    evaluated = re.search(r"^==> evaluate-model .* s  (.*)$", first.stderr, re.MULTILINE)[1]
    assert evaluated.startswith("accuracy 0.9") and "(first release)" in evaluated
    summarized = re.search(r"^==> release-summary .* s  (.*)$", first.stderr, re.MULTILINE)[1]
    assert "; gate passed; production runs" in summarized
    outputs = first.outputs
    assert outputs["result"] == "deployed"
    assert outputs["url"] == local_stack.url
    assert outputs["image"] == f"127.0.0.1:{local_stack.registry_port}/aiship@{outputs['digest']}"
    assert f"service   {local_stack.url}" in first.stdout
    assert f"image     {outputs['image']}" in first.stdout
    assert "model     digits 1.0.0" in first.stdout
    assert local_stack.version()["model"]["version"] == "1.0.0"

    curl = next(line for line in first.stdout.splitlines() if "curl" in line).split("try", 1)[1]
    answer = subprocess.run(
        ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
    )
    assert '"predictions":[0]' in answer.stdout.replace(" ", "")

    status = local_stack.local("status")
    assert re.search(r"cluster\s+https://127\.0\.0\.1:\d+\s+healthy", status.stderr)
    assert re.search(rf"service {local_stack.service}\s+{local_stack.url}\s+healthy", status.stderr)

    second = local_stack.run("--approve")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("up to date")
    assert second.outputs["result"] == "unchanged"
    assert second.outputs["digest"] == outputs["digest"]
    assert second.outputs["image_id"] == outputs["image_id"]
    assert "the same image as before" in second.stderr
    assert "0 layers pushed" in second.stderr


def test_a_no_at_the_approval_gate_deploys_nothing(local_stack):
    serving = local_stack.version()
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"n\n")
        declined = local_stack.run(stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert declined.returncode == 1
    assert re.search(
        r"Release 127\.0\.0\.1:\d+/aiship@sha256:[0-9a-f]{64} \(model 1\.0\.0, revision "
        r"[0-9a-f]{12}\) to kubernetes\? \[y/N\]",
        declined.stderr,
    )
    assert declined.error_lines == [
        "error: the release was not approved: kubernetes production is untouched"
    ]
    assert "==> deploy production" not in declined.stderr
    assert local_stack.version() == serving


def test_a_new_model_version_rolls_out(local_stack, tmp_path):
    train.write_model(tmp_path, name="digits", version="2.0.0")
    published = local_stack.steps(
        "publish-model", "--store", local_stack.store, "--model-dir", str(tmp_path), env=DEV_STORAGE
    )
    assert published.returncode == 0, published.stderr

    rolled = local_stack.run("--approve")
    assert rolled.returncode == 0, rolled.stderr
    # Production ran 1.0.0: 2.0.0 went through staging and the canary, judged at each step.
    assert (rolled.outputs["result"], rolled.outputs["model_version"]) == ("promoted", "2.0.0")
    assert len(json.loads(rolled.outputs["checks"])) == 2
    assert "canary    canary step 2/2: 50%" in rolled.stdout
    assert local_stack.version()["model"]["version"] == "2.0.0"


def distinct_model(folder: Path, version: str) -> None:
    """A model whose bytes differ from the served one (training is deterministic), so that a
    fetch cannot take it from what it fetched before; never served, so validity does not matter."""
    card = train.write_model(folder, name="digits", version=version)
    with open(folder / MODEL_FILE, "ab") as model:
        model.write(version.encode())
    write_card(folder, dataclasses.replace(card, sha256=file_sha256(folder / MODEL_FILE)))


def corrupt(store: str, version: str) -> None:
    """Replace a published model.onnx behind the store's back, as a broken disk or a hand would."""
    from azure.storage.blob import BlobServiceClient

    from aiship.local.azurite import Azurite

    port = int(store.split(":")[2].split("/")[0])
    service = BlobServiceClient.from_connection_string(Azurite(port=port).connection_string)
    blob = service.get_blob_client("models", f"digits/{version}/model.onnx")
    blob.upload_blob(io.BytesIO(b"not the model"), overwrite=True)


def forget(store: str, version: str) -> None:
    from azure.storage.blob import BlobServiceClient

    from aiship.local.azurite import Azurite

    port = int(store.split(":")[2].split("/")[0])
    container = BlobServiceClient.from_connection_string(
        Azurite(port=port).connection_string
    ).get_container_client("models")
    for name in list(container.list_blob_names(name_starts_with=f"digits/{version}/")):
        container.delete_blob(name)


def assert_stopped_before_push(run, local_stack, tags: list[str], step: str) -> None:
    assert run.returncode != 0
    assert f"==> {step}" in run.stderr and "failed after" in run.stderr
    assert len(run.error_lines) == 1, run.stderr
    for later in ("push-image", "promote-image", "deploy"):
        assert f"==> {later}" not in run.stderr
    assert local_stack.tags() == tags
    assert local_stack.version()["model"]["version"] == "2.0.0"


def test_a_corrupted_model_stops_the_pipeline_before_anything_is_pushed(local_stack, tmp_path):
    tags = local_stack.tags()
    distinct_model(tmp_path, "3.0.0")
    published = local_stack.steps(
        "publish-model", "--store", local_stack.store, "--model-dir", str(tmp_path), env=DEV_STORAGE
    )
    assert published.returncode == 0, published.stderr
    corrupt(local_stack.store, "3.0.0")
    try:
        failed = local_stack.run("--approve")
        assert_stopped_before_push(failed, local_stack, tags, "fetch-model")
        assert failed.returncode == 6
        assert "the stored model is damaged" in failed.error_lines[0]
    finally:
        forget(local_stack.store, "3.0.0")


def test_a_failing_build_stops_the_pipeline_before_anything_is_pushed(local_stack, tmp_path):
    """A base image without a shell: the first RUN of the Dockerfile fails."""
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "empty").write_text("")
    broken_base = f"aiship-test-broken-base:{local_stack.port}"
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(tarball), "."], check=True)
    docker(["import", str(tarball), broken_base], timeout=60)
    tags = local_stack.tags()
    try:
        failed = local_stack.run("--approve", "--base-image", broken_base)
        assert_stopped_before_push(failed, local_stack, tags, "build-image")
        assert "docker build" in failed.error_lines[0]
    finally:
        docker(["rmi", "--force", broken_base], timeout=60, check=False)


def test_the_swarm_target_releases_the_same_image(local_stack, closed_port):
    released = local_stack.local(
        "run",
        *("--azurite-port", str(local_stack.azurite_port)),
        *("--registry-port", str(local_stack.registry_port)),
        *("--service", f"{local_stack.service}-swarm", "--port", str(closed_port)),
        *("--target", "swarm", "--approve"),
    )
    assert released.returncode == 0, released.stderr
    assert "==> cluster up" not in released.stderr
    assert released.outputs["url"] == f"http://127.0.0.1:{closed_port}"
    version = requests.get(f"{released.outputs['url']}/version", timeout=5).json()
    assert version == local_stack.version()  # the same build as on kubernetes


def test_down_stops_exactly_what_up_started(local_stack):
    record = local_stack.record()
    pids = [record["azurite"]["pid"], record["registry"]["pid"]]
    swarm_port = record["services"][f"{local_stack.service}-swarm"]["port"]
    down = local_stack.local("down")
    assert down.returncode == 0, down.stderr
    stopped = down.outputs["stopped"].split(",")
    expected = [
        f"service {local_stack.service}",
        f"service {local_stack.service}-swarm",
        "cluster",
        "registry",
        "azurite",
    ]
    if not local_stack.swarm_was_active:
        expected.append("swarm")
    assert stopped == expected
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    for port in (local_stack.azurite_port, local_stack.registry_port, local_stack.port, swarm_port):
        assert not port_taken(port)
    assert not list((local_stack.state_dir / "cluster" / "node").glob("*.json"))
    assert docker(["version", "--format", "{{.Server.Version}}"]).strip()  # the engine stays
    with pytest.raises(requests.ConnectionError):
        local_stack.version()
    again = local_stack.local("down")
    assert (again.returncode, again.outputs["stopped"]) == (0, "")
