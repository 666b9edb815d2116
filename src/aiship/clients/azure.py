"""Azure sign-in and Resource Manager clients, shared by every step that talks to Azure.

No secrets anywhere: DefaultAzureCredential finds workload identity (OIDC) in CI, a managed
identity on Azure, or the developer's `az login`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from ..support.errors import ConfigError

ARM_URL = "https://management.azure.com"
# The audience of Entra ID tokens that ACR's /oauth2/exchange takes. Registries may refuse
# ARM-audience tokens (azureADAuthenticationAsArmPolicy disabled, which a built-in Azure Policy
# enforces); ACR-audience tokens are accepted by every registry.
ACR_AUDIENCE = "https://containerregistry.azure.net"
Client = TypeVar("Client")


def credential():
    """DefaultAzureCredential, without interactive prompts: pipelines have no one to answer."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


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
