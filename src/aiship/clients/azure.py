"""Azure sign-in and Resource Manager clients, shared by every step that talks to Azure.

No secrets anywhere: DefaultAzureCredential finds workload identity (OIDC) in CI, a managed
identity on Azure, or the developer's `az login`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from ..support.errors import AuthError, ConfigError, Unavailable

ARM_URL = "https://management.azure.com"
# The audience of Entra ID tokens that ACR's /oauth2/exchange takes. Registries may refuse
# ARM-audience tokens (azureADAuthenticationAsArmPolicy disabled, which a built-in Azure Policy
# enforces); ACR-audience tokens are accepted by every registry.
ACR_AUDIENCE = "https://containerregistry.azure.net"
Client = TypeVar("Client")


# A GitHub job that may ask for OIDC tokens (`permissions: id-token: write`) has these two.
GITHUB_OIDC_VARIABLES = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
FEDERATED_IDENTITY = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID")
# The audience Entra ID's token exchange takes for a federated credential's assertion.
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


def credential(env: Mapping[str, str] | None = None):
    """In a GitHub job with an identity federated with it: a credential that asks GitHub for a
    fresh OIDC assertion each time Entra ID needs one. GitHub's assertion lives minutes, and a
    login made once at the job's start (azure/login, `az login --federated-token`) cannot be
    refreshed: the first token of another audience (the registry's at push, Key Vault's at
    signing) asked for after it expired fails with AADSTS700024. Elsewhere
    DefaultAzureCredential (workload or managed identity, az login), without interactive
    prompts: pipelines have no one to answer."""
    env = os.environ if env is None else env
    if github_federation(env):
        from azure.identity import ClientAssertionCredential

        authority = env.get("AZURE_AUTHORITY_HOST")
        # An authority named on purpose (a sovereign or private cloud) is not looked up in
        # Microsoft's public list of authorities first.
        options = {"authority": authority, "disable_instance_discovery": True} if authority else {}
        return ClientAssertionCredential(
            env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], lambda: github_assertion(env), **options
        )
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def github_federation(env: Mapping[str, str]) -> bool:
    """Whether this is a GitHub job that can mint OIDC assertions for a named identity."""
    return all(env.get(name) for name in (*GITHUB_OIDC_VARIABLES, *FEDERATED_IDENTITY))


def github_assertion(env: Mapping[str, str]) -> str:
    """A fresh OIDC token from the GitHub job's token service, for Entra ID's exchange."""
    import requests
    from urllib3.util.retry import Retry

    from ..support.http import retrying_session

    url, token = (env[name] for name in GITHUB_OIDC_VARIABLES)
    retry = Retry(total=3, backoff_factor=1, status_forcelist=(429, 500, 502, 503, 504))
    try:
        answer = retrying_session(retry).get(
            url,
            params={"audience": EXCHANGE_AUDIENCE},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except requests.RequestException as exc:
        raise Unavailable(
            f"GitHub's OIDC token service did not answer: {type(exc).__name__}"
        ) from None
    if answer.status_code != 200 or "value" not in answer.text:
        raise AuthError(
            f"GitHub gave this job no OIDC token (HTTP {answer.status_code}): grant the job "
            "`permissions: id-token: write`"
        )
    return str(answer.json()["value"])


def subscription_id(flag: str | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    subscription = flag or env.get("AZURE_SUBSCRIPTION_ID")
    if not subscription:
        raise ConfigError(
            "no Azure subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID (in CI: the "
            "repository variable or the variable group that `python -m aiship setup` writes)"
        )
    return subscription


def resource_manager_url(env: Mapping[str, str] | None = None) -> str:
    """Resource Manager of the cloud in use: AZURE_RESOURCE_MANAGER_URL, else Azure's public."""
    env = os.environ if env is None else env
    return (env.get("AZURE_RESOURCE_MANAGER_URL") or ARM_URL).rstrip("/")


def container_registry_scope(env: Mapping[str, str] | None = None) -> str:
    """The token scope for ACR's token exchange: AZURE_CONTAINER_REGISTRY_AUDIENCE, else ACR's."""
    env = os.environ if env is None else env
    audience = env.get("AZURE_CONTAINER_REGISTRY_AUDIENCE") or ACR_AUDIENCE
    return f"{audience.rstrip('/')}/.default"


def management_client(
    client_class: type[Client],
    subscription: str,
    *,
    token_credential: Any = None,
    base_url: str | None = None,
    **transport: Any,
) -> Client:
    """A Resource Manager client of the cloud in use (`base_url` or AZURE_RESOURCE_MANAGER_URL),
    asking for tokens of that Resource Manager's audience (its own URL)."""
    url = (base_url or resource_manager_url()).rstrip("/")
    return client_class(
        token_credential or credential(),
        subscription,
        base_url=url,
        credential_scopes=[f"{url}/.default"],
        **transport,
    )
