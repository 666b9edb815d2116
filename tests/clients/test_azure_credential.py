"""The steps' Azure sign-in in a GitHub job, through the real azure-identity and MSAL against a
local GitHub OIDC token service and Entra ID whose assertions expire (tests/entra.py): a token
asked for after the job's first assertion expired still comes, because each is minted fresh."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import ClientAuthenticationError

from aiship.clients.azure import ACR_AUDIENCE, credential, github_assertion
from aiship.support.errors import AuthError
from tests.entra import FakeTokenService

VAULT_SCOPE = "https://vault.azure.net/.default"
ACR_SCOPE = f"{ACR_AUDIENCE}/.default"


def past_the_first_assertion(fake: FakeTokenService) -> None:
    time.sleep(fake.lifetime + 0.5)  # what a build that outlasts GitHub's assertion does


def test_a_token_asked_for_after_the_first_assertion_expired_still_comes(tokens):
    signed_in = credential(tokens.job_environment())

    assert signed_in.get_token(ACR_SCOPE).token  # at push
    past_the_first_assertion(tokens)
    assert signed_in.get_token(VAULT_SCOPE).token  # at signing, minutes later

    assert tokens.granted == [ACR_SCOPE, VAULT_SCOPE]
    assert len(tokens.minted) == 2 and tokens.refused == []


def test_a_login_made_once_is_refused_once_its_assertion_expired(tokens):
    """What azure/login (`az login --federated-token`) does, and why the steps no longer lean on
    it: one assertion, taken at the job's start. The fake refuses it as Entra ID does."""
    from azure.identity import ClientAssertionCredential

    env = tokens.job_environment()
    once = github_assertion(env)
    login = ClientAssertionCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        lambda: once,
        authority=env["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )

    assert login.get_token(ACR_SCOPE).token
    past_the_first_assertion(tokens)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700024"):
        login.get_token(VAULT_SCOPE)
    assert tokens.refused == ["AADSTS700024"]


def test_a_job_without_id_token_permission_is_told_what_to_grant(tokens):
    env = {**tokens.job_environment(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "not-this-job's"}

    with pytest.raises(
        AuthError, match=r"HTTP 401\): grant the job `permissions: id-token: write`"
    ):
        github_assertion(env)


def test_outside_a_federated_github_job_the_default_credential_is_used(tokens):
    from azure.identity import ClientAssertionCredential, DefaultAzureCredential

    env = tokens.job_environment()
    assert isinstance(credential(env), ClientAssertionCredential)
    for missing in ("ACTIONS_ID_TOKEN_REQUEST_URL", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"):
        without = {k: v for k, v in env.items() if k != missing}
        assert isinstance(credential(without), DefaultAzureCredential), missing
    assert tokens.minted == []  # deciding asks for nothing
