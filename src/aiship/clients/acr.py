"""Azure Container Registry: resolve it in Resource Manager, log in with an Entra ID token.

The Entra ID access token is exchanged at the registry's /oauth2/exchange for an ACR refresh
token; that token is the password of user 00000000-0000-0000-0000-000000000000 for `docker login`,
and buys access tokens per repository and action at /oauth2/token. No admin user, no Azure CLI.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from ..support.errors import AuthError, NotFound, StepError, Unavailable
from ..support.outputs import mask
from . import azure
from .registry import (
    Credentials,
    RegistryClient,
    RegistryLogin,
    error_message,
    firewall_error,
    firewalled,
)
from .sdk_errors import azure_errors

log = logging.getLogger(__name__)

TOKEN_USER = "00000000-0000-0000-0000-000000000000"  # noqa: S105  (ACR's fixed name, no secret)
READER_ROLE = "Reader"  # reads the registry resource in Resource Manager
# ACR login servers: azurecr.io, and Azure China's and US Government's.
ACR_HOST = re.compile(r"^([a-z0-9]{5,50})\.azurecr\.(?:io|cn|us)$")


@dataclass(frozen=True)
class Acr:
    name: str
    resource_group: str
    subscription: str
    login_server: str
    provisioning_state: str
    admin_user_enabled: bool


def resolve_acr(
    name: str,
    *,
    subscription: str | None,
    resource_group: str | None = None,
    token_credential: Any = None,
    client: Any = None,
) -> Acr:
    """The registry's login server; it must exist and be provisioned. Without a group: search.
    `subscription` None means AZURE_SUBSCRIPTION_ID."""
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    subscription = azure.subscription_id(subscription)
    client = client or azure.management_client(
        ContainerRegistryManagementClient, subscription, token_credential=token_credential
    )
    group = f"resource group '{resource_group}'" if resource_group else "any resource group"
    what = f"container registry '{name}' in {group} of subscription '{subscription}'"
    with azure_errors(
        what, role=READER_ROLE, fix_not_found="check --acr, --resource-group and --subscription"
    ):
        if resource_group:
            registry = client.registries.get(resource_group, name)
        else:
            found = (r for r in client.registries.list() if (r.name or "").lower() == name.lower())
            registry = next(found, None)
    if registry is None:
        raise NotFound(f"{what} not found: check --acr and --subscription")
    acr = Acr(
        name=registry.name or name,
        resource_group=resource_group or _resource_group_of(registry.id or ""),
        subscription=subscription,
        login_server=registry.login_server or "",
        provisioning_state=_text(registry.provisioning_state),
        admin_user_enabled=bool(registry.admin_user_enabled),
    )
    if acr.provisioning_state != "Succeeded" or not acr.login_server:
        raise Unavailable(
            f"{what} is {acr.provisioning_state or 'not provisioned'}, not Succeeded: "
            "wait until its deployment finishes, then retry"
        )
    if acr.admin_user_enabled:
        log.warning(
            "warning: %s has the admin user enabled; these steps never use it: disable it",
            acr.name,
        )
    return acr


def acr_login(acr: Acr, *, token_credential: Any = None, client: RegistryClient | None = None):
    """A RegistryLogin for `acr`: this identity's Entra ID token exchanged for a refresh token."""
    return login_at(acr.login_server, acr.name, token_credential=token_credential, client=client)


def acr_name_of(host: str) -> str | None:
    """The registry's name when HOST is an ACR login server (NAME.azurecr.io, or a sovereign
    cloud's), else None."""
    found = ACR_HOST.match(host.lower())
    return found.group(1) if found else None


def login_at(
    login_server: str,
    name: str,
    *,
    token_credential: Any = None,
    client: RegistryClient | None = None,
) -> RegistryLogin:
    """acr_login by login server, with no Resource Manager lookup: the token exchange itself
    says whether this identity may use the registry."""
    credential = token_credential or azure.credential()
    what = f"Entra ID sign-in for container registry '{name}'"
    with azure_errors(what, role="AcrPush"):
        aad_token = credential.get_token(azure.container_registry_scope()).token
    mask(aad_token)
    client = client or RegistryClient(RegistryLogin(login_server))
    refresh_token = exchange_token(client, name, aad_token)
    return RegistryLogin(
        host=login_server,
        credentials=Credentials(
            TOKEN_USER,
            refresh_token,
            source=f"the Entra ID token exchange of {name}",
            refresh_token=True,
        ),
        pull_role=f"the AcrPull role on {name}",
        push_role=f"the AcrPush role on {name}",
    )


def exchange_token(client: RegistryClient, name: str, aad_token: str) -> str:
    """POST the Entra ID token to /oauth2/exchange (beside the challenge's realm): refresh token."""
    challenge = client.challenge()
    if challenge is None or challenge[0] != "bearer" or not challenge[1].get("realm"):
        raise StepError(
            f"registry {client.login.host} does not ask for a bearer token: is {name} an ACR?"
        )
    params = challenge[1]
    exchange_url = params["realm"].rsplit("/", 1)[0] + "/exchange"
    form = {
        "grant_type": "access_token",
        "service": params.get("service", ""),
        "access_token": aad_token,
    }
    if os.environ.get("AZURE_TENANT_ID"):
        form["tenant"] = os.environ["AZURE_TENANT_ID"]
    response = client.request("POST", exchange_url, data=form)
    said = error_message(response)
    if firewalled(said):
        raise AuthError(firewall_error(name, said))
    if response.status_code in (401, 403):
        raise AuthError(
            f"container registry '{name}' refused the Entra ID token ({response.status_code}: "
            f"{said}): sign in as an identity of the registry's tenant (AZURE_TENANT_ID, the "
            "federated credential), with a token for the ACR audience "
            "(AZURE_CONTAINER_REGISTRY_AUDIENCE in other clouds)"
        )
    if response.status_code == 429 or response.status_code >= 500:
        raise Unavailable(
            f"the token exchange of '{name}' answered {response.status_code}: try again later"
        )
    refresh_token = response.json().get("refresh_token") if response.ok else None
    if not refresh_token:
        raise StepError(
            f"the token exchange of '{name}' answered {response.status_code} without a token"
        )
    mask(refresh_token)
    return refresh_token


def _resource_group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    lowered = [part.lower() for part in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""


def _text(value: Any) -> str:
    """An SDK enum member or a plain string, as the string the API sent ("Succeeded")."""
    return str(getattr(value, "value", value) or "")
