"""The OCI registry client: image references, http only on this machine, credentials, retries."""

from __future__ import annotations

import pytest

from aiship.clients.registry import (
    ImageRef,
    RegistryClient,
    RegistryLogin,
    credentials_from_env,
    new_session,
    registry_url,
)
from aiship.support.errors import ConfigError, IntegrityError


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
