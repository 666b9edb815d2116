"""verify-push against a real docker-registry; images uploaded through its API (no engine)."""

from __future__ import annotations

import pytest
import requests

from steps.errors import AuthError, ConfigError, IntegrityError, NotFound, Unavailable
from steps.image_build import LABEL_MODEL_SHA256, LABEL_REVISION
from steps.local.registry import LocalRegistry
from steps.registry import (
    ImageRef,
    RegistryClient,
    RegistryLogin,
    credentials_from_env,
    new_session,
    registry_url,
)
from steps.verify_push import verify_push

from .conftest import MODEL_SHA256, PASSWORD, REVISION, USER, put_image, run_step

LABELS = {LABEL_REVISION: REVISION, LABEL_MODEL_SHA256: MODEL_SHA256}


def test_local_registry_answers_and_stops(tmp_path):
    with LocalRegistry(tmp_path / "r") as registry:
        assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{registry.url}/v2/", timeout=5)


def test_htpasswd_registry_wants_a_login(auth_registry):
    answer = requests.get(f"{auth_registry.url}/v2/", timeout=5)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(f"{auth_registry.url}/v2/", auth=(USER, PASSWORD), timeout=5).ok


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/aiship/app:v1", ImageRef("127.0.0.1:5000", "aiship/app", "v1")),
        ("localhost/app:v1", ImageRef("localhost", "app", "v1")),
        ("reg.example/team/app", ImageRef("reg.example", "team/app")),
        (
            "127.0.0.1:5000/app:v1@sha256:" + "a" * 64,
            ImageRef("127.0.0.1:5000", "app", "v1", "sha256:" + "a" * 64),
        ),
    ],
)
def test_image_references(text, expected):
    assert ImageRef.parse(text) == expected
    assert str(expected) == text


def test_image_reference_needs_a_registry_unless_acr():
    with pytest.raises(ConfigError, match="name the registry too"):
        ImageRef.parse("aiship/app:v1")
    acr = ImageRef.parse("aiship/app:v1", default_registry="x.azurecr.io")
    assert acr.name == "x.azurecr.io/aiship/app"
    with pytest.raises(ConfigError, match=r"--acr resolves to x\.azurecr\.io"):
        ImageRef.parse("y.azurecr.io/aiship/app:v1", default_registry="x.azurecr.io")


def test_http_only_for_registries_on_this_machine():
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("localhost") == "http://localhost"
    assert registry_url("aishipacr.azurecr.io") == "https://aishipacr.azurecr.io"


def test_credentials_come_in_pairs():
    assert credentials_from_env({}) is None
    with pytest.raises(ConfigError, match="REGISTRY_PASSWORD is not set"):
        credentials_from_env({"REGISTRY_USERNAME": "ci"})
    credentials = credentials_from_env({"REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": "pw-9"})
    assert "pw-9" not in repr(credentials)


def test_session_retries_503_and_honours_retry_after(httpserver):
    """urllib3's Retry on the session: two 503s, then the answer."""
    path = "/v2/aiship/app/manifests/v1"
    for _ in range(2):
        httpserver.expect_ordered_request(path).respond_with_data(
            "busy", status=503, headers={"Retry-After": "0"}
        )
    httpserver.expect_ordered_request(path).respond_with_data(
        "{}", headers={"Docker-Content-Digest": "sha256:" + "4" * 64}
    )
    client = RegistryClient(
        RegistryLogin(f"127.0.0.1:{httpserver.port}"), session=new_session(backoff=0)
    )
    with pytest.raises(IntegrityError, match="hashes to sha256:44136fa"):
        client.manifest("aiship/app", "v1")  # reached the third answer, whose digest is wrong
    assert len(httpserver.log) == 3
