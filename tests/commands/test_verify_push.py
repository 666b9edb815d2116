"""verify-push: through the registry API, the tag is exactly the pushed image, with its labels."""

from __future__ import annotations

import pytest

from aiship.clients.registry import (
    ImageRef,
    RegistryLogin,
)
from aiship.commands.verify_push import verify_push
from aiship.support.errors import AuthError, ConfigError, IntegrityError, NotFound, Unavailable
from aiship.support.labels import LABEL_MODEL_NAME, LABEL_MODEL_SHA256, LABEL_REVISION
from tests.registries import MODEL_SHA256, PASSWORD, REVISION, USER, put_image, run_step

LABELS = {LABEL_REVISION: REVISION, LABEL_MODEL_SHA256: MODEL_SHA256}


def test_verify_accepts_the_pushed_digest_and_labels(registry):
    digest = put_image(registry, "aiship/app", "v1", LABELS)
    result = run_step(
        "verify-push",
        *("--image", f"{registry.host}/aiship/app:v1", "--digest", digest),
        *("--expect-revision", REVISION, "--expect-model-sha256", MODEL_SHA256),
    )
    assert result.returncode == 0, result.stderr
    assert result.outputs == {
        "image": f"{registry.host}/aiship/app@{digest}",
        "digest": digest,
        "revision": REVISION,
        "model_sha256": MODEL_SHA256,
    }


def test_verify_shows_what_was_built_on_the_job_summary(registry, tmp_path):
    digest = put_image(registry, "aiship/app", "v1", {**LABELS, LABEL_MODEL_NAME: "digits"})
    summary = tmp_path / "summary.md"
    image = f"{registry.host}/aiship/app:v1"

    result = run_step(
        "verify-push",
        "--image",
        image,
        "--digest",
        digest,
        env={"STEPS_SUMMARY_FILE": str(summary)},
    )

    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("### Built and verified")
    assert f"| image | `{registry.host}/aiship/app@{digest}` |" in text
    assert f"| git revision | `{REVISION}` |" in text
    assert f"| model | digits (sha256 `{MODEL_SHA256}`) |" in text


def test_verify_names_where_a_moved_tag_points(registry):
    pushed = put_image(registry, "aiship/app", "v1", LABELS)
    moved = put_image(registry, "aiship/app", "v1", LABELS, content=b"someone else's build\n")
    result = run_step(
        "verify-push", "--image", f"{registry.host}/aiship/app:v1", "--digest", pushed
    )
    assert result.returncode == IntegrityError.exit_code
    assert f"tag {registry.host}/aiship/app:v1 points at {moved}, not at the pushed {pushed}" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("flag", "label"),
    [("--expect-revision", LABEL_REVISION), ("--expect-model-sha256", LABEL_MODEL_SHA256)],
)
def test_verify_catches_labels_of_other_inputs(registry, flag, label):
    digest = put_image(registry, "aiship/app", "v1", LABELS)
    result = run_step(
        "verify-push",
        *("--image", f"{registry.host}/aiship/app:v1", "--digest", digest, flag, "f" * 40),
    )
    assert result.returncode == IntegrityError.exit_code
    assert f"has {label}=" in result.stderr
    assert "expected " + "f" * 40 in result.stderr


def test_verify_unknown_tag_is_not_found(registry):
    login = RegistryLogin(registry.host)
    with pytest.raises(NotFound, match="aiship/app:nope does not exist"):
        verify_push(login, ImageRef.parse(f"{registry.host}/aiship/app:nope"), "sha256:" + "0" * 64)


def test_verify_with_htpasswd_credentials(auth_registry):
    digest = put_image(auth_registry, "aiship/app", "v1", LABELS, auth=(USER, PASSWORD))
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    image = f"{auth_registry.host}/aiship/app:v1"
    result = run_step("verify-push", "--image", image, "--digest", digest, "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.log


def test_verify_wrong_password_is_an_auth_error(auth_registry):
    digest = put_image(auth_registry, "aiship/app", "v1", LABELS, auth=(USER, PASSWORD))
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": "not-the-password"}
    image = f"{auth_registry.host}/aiship/app:v1"
    result = run_step("verify-push", "--image", image, "--digest", digest, env=env)
    assert result.returncode == AuthError.exit_code
    assert "refused the credentials (REGISTRY_USERNAME/REGISTRY_PASSWORD)" in result.stderr
    assert "not-the-password" not in result.log


def test_verify_without_credentials_says_which_to_set(auth_registry):
    image = f"{auth_registry.host}/aiship/app:v1"
    result = run_step("verify-push", "--image", image, "--digest", "sha256:" + "0" * 64)
    assert result.returncode == AuthError.exit_code
    assert "requires a login: set REGISTRY_USERNAME and REGISTRY_PASSWORD" in result.stderr


def test_verify_registry_down(closed_port):
    image = f"127.0.0.1:{closed_port}/aiship/app:v1"
    result = run_step("verify-push", "--image", image, "--digest", "sha256:" + "0" * 64)
    assert result.returncode == Unavailable.exit_code
    last = result.stderr.strip().splitlines()[-1]  # after urllib3's warnings about its retries
    assert last.startswith(f"error: registry 127.0.0.1:{closed_port} did not answer")


def test_verify_rejects_a_malformed_digest(registry):
    result = run_step("verify-push", "--image", f"{registry.host}/a:v1", "--digest", "latest")
    assert result.returncode == ConfigError.exit_code
    assert "--digest 'latest' is not a sha256:<64 hex> digest" in result.stderr
