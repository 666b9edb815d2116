"""push-image with a real Docker engine into a real docker-registry, then verify-push."""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys

import pytest

from aiship.support.errors import AuthError, IntegrityError, NotFound, Unavailable
from aiship.support.labels import LABEL_MODEL_SHA256, LABEL_REVISION
from tests.clirun import CI_OUTPUT_VARIABLES
from tests.registries import MODEL_SHA256, PASSWORD, REVISION, USER, run_step
from tests.repo import REPO_ROOT

pytestmark = pytest.mark.docker

LABELS = {LABEL_REVISION: REVISION, LABEL_MODEL_SHA256: MODEL_SHA256}


def test_push_then_verify_then_push_again_moves_no_layers(registry, local_image):
    image = local_image(f"{registry.host}/aiship/app:v1", LABELS)
    first = run_step("push-image", "--image", image)
    assert first.returncode == 0, first.stderr
    digest = first.outputs["digest"]
    assert first.outputs["image"] == f"{registry.host}/aiship/app@{digest}"
    assert ": Pushed" in first.stderr
    assert "Preparing" not in first.stderr  # condensed: one line per layer when not a terminal
    assert "(1 of its 1 layers sent, 0 already there)" in first.stderr

    verified = run_step(
        "verify-push",
        *("--image", image, "--digest", digest),
        *("--expect-revision", REVISION, "--expect-model-sha256", MODEL_SHA256),
    )
    assert verified.returncode == 0, verified.stderr

    again = run_step("push-image", "--image", image)
    assert again.returncode == 0, again.stderr
    assert again.outputs["digest"] == digest
    assert ": Layer already exists" in again.stderr
    assert ": Pushed" not in again.stderr
    assert "(0 of its 1 layers sent, 1 already there)" in again.stderr


def on_a_terminal(*args: str) -> tuple[int, str]:
    """`python -m aiship ARGS` with a pseudo-terminal as its stdin, stdout and stderr."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in CI_OUTPUT_VARIABLES}
    process = subprocess.Popen(
        [sys.executable, "-m", "aiship", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
    )
    os.close(secondary)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
        while chunk := os.read(primary, 4096):
            chunks.append(chunk)
    os.close(primary)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_the_layers_are_counted_as_in_ci(registry, local_image):
    """docker draws its progress on a terminal; the count must not depend on where it runs."""
    image = local_image(f"{registry.host}/aiship/app:terminal", LABELS)

    code, screen = on_a_terminal("push-image", "--image", image)

    assert code == 0, screen
    assert "(1 of its 1 layers sent, 0 already there)" in screen


def test_verify_catches_a_tag_moved_by_a_later_push(registry, local_image):
    image = f"{registry.host}/aiship/app:v1"
    local_image(image, LABELS)
    pushed = run_step("push-image", "--image", image).outputs["digest"]
    local_image(image, LABELS, content=b"another build\n")
    moved = run_step("push-image", "--image", image).outputs["digest"]
    assert moved != pushed
    result = run_step("verify-push", "--image", image, "--digest", pushed)
    assert result.returncode == IntegrityError.exit_code
    assert f"tag {image} points at {moved}, not at the pushed {pushed}" in result.stderr


def test_push_with_htpasswd_login_leaves_no_secret(auth_registry, local_image, tmp_path):
    image = local_image(f"{auth_registry.host}/aiship/app:v1", LABELS)
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD, "HOME": str(tmp_path)}
    pushed = run_step("push-image", "--image", image, "-v", env=env)
    assert pushed.returncode == 0, pushed.stderr
    verified = run_step(
        "verify-push", "--image", image, "--digest", pushed.outputs["digest"], env=env
    )
    assert verified.returncode == 0, verified.stderr
    assert PASSWORD not in pushed.log + verified.log
    # docker logged in with a private config that is gone: nothing in HOME, nothing left over.
    assert not list(tmp_path.rglob("config.json"))


def test_push_masks_the_password_in_github_actions(auth_registry, local_image, tmp_path):
    image = local_image(f"{auth_registry.host}/aiship/app:v1", LABELS)
    outputs = tmp_path / "github-output"
    env = {
        "REGISTRY_USERNAME": USER,
        "REGISTRY_PASSWORD": PASSWORD,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(outputs),
    }
    pushed = run_step("push-image", "--image", image, env=env)
    assert pushed.returncode == 0, pushed.stderr
    lines_with_secret = [line for line in pushed.log.splitlines() if PASSWORD in line]
    assert lines_with_secret == [f"::add-mask::{PASSWORD}"]
    assert f"digest={pushed.outputs['digest']}" in outputs.read_text()


def test_push_with_a_wrong_password(auth_registry, local_image):
    image = local_image(f"{auth_registry.host}/aiship/app:v1", LABELS)
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": "wrong-Pw-1234"}
    result = run_step("push-image", "--image", image, env=env)
    assert result.returncode == AuthError.exit_code
    assert "refused the credentials (REGISTRY_USERNAME/REGISTRY_PASSWORD)" in result.stderr
    assert "wrong-Pw-1234" not in result.log


def test_push_without_a_login_says_which_to_set(auth_registry, local_image):
    image = local_image(f"{auth_registry.host}/aiship/app:v1", LABELS)
    result = run_step("push-image", "--image", image)
    assert result.returncode == AuthError.exit_code
    assert "requires a login: set REGISTRY_USERNAME and REGISTRY_PASSWORD" in result.stderr


def test_push_to_a_registry_that_is_down(local_image, closed_port):
    image = local_image(f"127.0.0.1:{closed_port}/aiship/app:v1", LABELS)
    result = run_step("push-image", "--image", image)
    assert result.returncode == Unavailable.exit_code
    assert f"could not push to registry 127.0.0.1:{closed_port}: it did not answer" in (
        result.stderr
    )


def test_push_of_an_image_never_built(registry, docker_engine):
    result = run_step("push-image", "--image", f"{registry.host}/aiship/app:never-built")
    assert result.returncode == NotFound.exit_code
    assert "build it first" in result.stderr


def test_built_image_pushes_and_verifies(registry, image_builder, trained_model_dir):
    """The image build's own function, its labels, pushed and verified by digest."""
    built = image_builder(trained_model_dir, tag=f"{registry.host}/aiship/app:built")
    pushed = run_step("push-image", "--image", built.tags[0])
    assert pushed.returncode == 0, pushed.stderr
    verified = run_step(
        "verify-push",
        *("--image", built.tags[0], "--digest", pushed.outputs["digest"]),
        *("--expect-revision", built.labels[LABEL_REVISION]),
        *("--expect-model-sha256", built.card.sha256),
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.outputs["model_sha256"] == built.card.sha256
