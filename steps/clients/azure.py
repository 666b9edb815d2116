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
            "repository variable or the variable group that `python -m steps setup` writes)"
        )
    return subscription


def management_client(
    client_class: type[Client],
    subscription: str,
    *,
    token_credential: Any = None,
    base_url: str | None = None,
    **transport: Any,
) -> Client:
    """A Resource Manager client; `base_url` (or AZURE_RESOURCE_MANAGER_URL) for other clouds."""
    url = (base_url or os.environ.get("AZURE_RESOURCE_MANAGER_URL") or ARM_URL).rstrip("/")
    return client_class(
        token_credential or credential(),
        subscription,
        base_url=url,
        credential_scopes=[f"{ARM_URL}/.default"],
        **transport,
    )
