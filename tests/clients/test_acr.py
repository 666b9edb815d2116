"""--acr: the real azure-mgmt-containerregistry SDK and DefaultAzureCredential, the real registry
with token auth, and fakes of Resource Manager (HTTPS), a managed identity and ACR's token service.
"""

from __future__ import annotations

import pytest

from aiship.support.errors import AuthError, NotFound, Unavailable
from aiship.support.labels import LABEL_MODEL_SHA256, LABEL_REVISION
from tests.registries import (
    ACR_NAME,
    MODEL_SHA256,
    RESOURCE_GROUP,
    REVISION,
    SUBSCRIPTION,
    put_image,
    run_step,
)

LABELS = {LABEL_REVISION: REVISION, LABEL_MODEL_SHA256: MODEL_SHA256}
ACR = ("--acr", ACR_NAME)
IN_GROUP = (*ACR, "--resource-group", RESOURCE_GROUP)
UNKNOWN = "sha256:" + "0" * 64


def verify(acr, digest: str = UNKNOWN, scope: tuple[str, ...] = IN_GROUP):
    """`verify-push` of aiship/app:v1 against DIGEST, through the stand-in, with the ACR flags."""
    return run_step(
        "verify-push", "--image", "aiship/app:v1", "--digest", digest, *scope, env=acr.env()
    )


def put(acr, tag: str = "v1", content: bytes = b"hello\n") -> str:
    """Upload an image as a pusher would: with an access token of the token service."""
    token = acr.tokens.mint(["repository:aiship/app:pull,push"])
    return put_image(acr.registry, "aiship/app", tag, LABELS, bearer=token, content=content)


def test_verify_through_the_token_exchange(acr):
    digest = put(acr)
    result = run_step(
        "verify-push",
        *("--image", "aiship/app:v1", "--digest", digest, *IN_GROUP),
        *("--expect-revision", REVISION, "--expect-model-sha256", MODEL_SHA256),
        env=acr.env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.outputs["image"] == f"{acr.login_server}/aiship/app@{digest}"
    grants = [grant for path, grant in acr.tokens.calls if path.startswith("/oauth2")]
    assert grants == ["access_token", "refresh_token"]  # exchanged once, then per scope


def test_without_resource_group_the_registry_is_found_in_the_subscription(acr):
    digest = put(acr)
    result = verify(acr, digest, ACR)
    assert result.returncode == 0, result.stderr


def test_a_moved_tag_is_named(acr):
    pushed = put(acr)
    moved = put(acr, content=b"rebuilt\n")
    result = verify(acr, pushed)
    assert result.returncode == 6
    assert f"tag {acr.login_server}/aiship/app:v1 points at {moved}" in result.stderr


def test_registry_missing_in_resource_manager(acr):
    result = run_step(
        "verify-push",
        *("--image", "aiship/app:v1", "--digest", "sha256:" + "0" * 64),
        *("--acr", "otheracr", "--resource-group", "rg-other"),
        env=acr.env(),
    )
    assert result.returncode == NotFound.exit_code
    message = result.stderr.strip().splitlines()[-1]
    assert "'otheracr'" in message
    assert "'rg-other'" in message
    assert SUBSCRIPTION in message


def test_registry_missing_anywhere_in_the_subscription(acr):
    result = run_step(
        "verify-push",
        *("--image", "aiship/app:v1", "--digest", "sha256:" + "0" * 64, "--acr", "otheracr"),
        env=acr.env(),
    )
    assert result.returncode == NotFound.exit_code
    assert f"'otheracr' in any resource group of subscription '{SUBSCRIPTION}'" in result.stderr


def test_resource_manager_403_names_the_role(acr):
    acr.arm.server.clear()
    acr.arm.server.expect_request(acr.registry_path()).respond_with_json(
        {"error": {"code": "AuthorizationFailed", "message": "no read"}}, status=403
    )
    result = verify(acr)
    assert result.returncode == AuthError.exit_code
    assert "needs the role 'Reader'" in result.stderr


def test_identity_without_acr_pull(acr):
    digest = put(acr)
    acr.tokens.role = None
    result = verify(acr, digest)
    assert result.returncode == AuthError.exit_code
    assert f"the login needs the AcrPull role on {ACR_NAME}" in result.stderr


def test_exchange_refused(acr):
    acr.tokens.exchange_refused = True
    result = verify(acr)
    assert result.returncode == AuthError.exit_code
    assert f"'{ACR_NAME}' refused the Entra ID token (401: the access token is not valid)" in (
        result.stderr
    )


def test_admin_user_is_warned_about(acr):
    acr.admin_user_enabled = True
    digest = put(acr)
    result = verify(acr, digest)
    assert result.returncode == 0, result.stderr
    assert f"warning: {ACR_NAME} has the admin user enabled" in result.stderr


def test_registry_still_provisioning(acr):
    acr.provisioning_state = "Creating"
    result = verify(acr)
    assert result.returncode == Unavailable.exit_code
    assert "is Creating, not Succeeded" in result.stderr


def test_acr_registry_down(acr):
    acr.registry.stop()
    result = verify(acr)
    assert result.returncode == Unavailable.exit_code
    assert f"registry {acr.login_server} did not answer" in result.stderr


@pytest.mark.docker
def test_push_and_verify_with_acr_and_no_secret_in_any_log(acr, local_image):
    local_image("aiship/app:v1", LABELS)  # the build's local name; push-image tags it for ACR
    pushed = run_step("push-image", "--image", "aiship/app:v1", *IN_GROUP, "-v", env=acr.env())
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.outputs["digest"]
    assert pushed.outputs["image"] == f"{acr.login_server}/aiship/app@{digest}"
    verified = run_step(
        "verify-push",
        *("--image", "aiship/app:v1", "--digest", digest, *IN_GROUP, "-v"),
        *("--expect-revision", REVISION),
        env=acr.env(),
    )
    assert verified.returncode == 0, verified.stderr
    # docker logged in with the refresh token (Basic at /oauth2/token); our client used the grant.
    grants = [grant for path, grant in acr.tokens.calls if path == "/oauth2/token"]
    assert "basic" in grants
    assert "refresh_token" in grants
    secrets = acr.tokens.secrets
    assert len(secrets) >= 4  # Entra ID token, refresh tokens, access tokens
    for secret in secrets:
        assert secret not in pushed.log + verified.log
    local_image.forget(f"{acr.login_server}/aiship/app:v1")


@pytest.mark.docker
def test_push_without_acr_push_names_the_role(acr, local_image):
    local_image("aiship/app:v1", LABELS)
    acr.tokens.role = "AcrPull"
    result = run_step("push-image", "--image", "aiship/app:v1", *IN_GROUP, env=acr.env())
    assert result.returncode == AuthError.exit_code
    assert f"the login needs the AcrPush role on {ACR_NAME}" in result.stderr
    local_image.forget(f"{acr.login_server}/aiship/app:v1")


def test_the_token_asked_for_is_for_the_registry_not_resource_manager(acr):
    """Registries under the built-in policy refuse ARM-audience tokens (the stand-in's default);
    the exchange gets an ACR-audience token, Resource Manager one of its own cloud's audience."""
    digest = put(acr)
    result = verify(acr, digest)
    assert result.returncode == 0, result.stderr
    assert set(acr.tokens.audiences.values()) == {
        "https://containerregistry.azure.net",
        acr.arm.url,
    }


def test_a_registry_firewall_is_named_as_such(acr):
    acr.tokens.firewall = True
    result = verify(acr)
    assert result.returncode == AuthError.exit_code
    assert "refuses this machine's network address (client with IP '203.0.113.7' is not " in (
        result.stderr
    )
    assert "networking rules" in result.stderr and "role" not in result.stderr


def test_the_registry_is_found_on_a_later_page_of_the_subscription(acr):
    acr.pages = 3
    digest = put(acr)
    result = verify(acr, digest, ACR)
    assert result.returncode == 0, result.stderr


def test_resource_manager_throttling_is_retried(acr):
    acr.throttled = 2
    digest = put(acr)
    result = verify(acr, digest)
    assert result.returncode == 0, result.stderr
    assert acr.throttled == 0


def test_a_base_image_in_another_acr_is_pulled_with_an_entra_id_login(monkeypatch):
    """A mirror in another ACR than --acr's: signed in by its login server, no ARM lookup."""
    from aiship.clients import acr as acr_client
    from aiship.clients.login import base_image_login
    from aiship.clients.registry import RegistryLogin

    asked = []
    monkeypatch.setattr(
        acr_client, "login_at", lambda host, name, **_: asked.append(name) or RegistryLogin(host)
    )
    target = f"{ACR_NAME}.azurecr.io/aiship/app"

    assert base_image_login("mirrors.azurecr.io/python:3.11-slim", target).host == (
        "mirrors.azurecr.io"
    )
    assert base_image_login("python:3.11-slim", target) is None  # docker's own configuration
    assert asked == ["mirrors"]
