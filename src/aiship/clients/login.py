"""Which registry login an image command uses, from --image and --acr or the environment.

`--acr NAME [--resource-group RG] [--subscription S]` resolves an Azure Container Registry and logs
in through Entra ID; without it, REGISTRY_USERNAME/REGISTRY_PASSWORD, or anonymous.
"""

from __future__ import annotations

from .registry import ImageRef, RegistryLogin, credentials_from_env


def registry_login(
    image: str,
    *,
    acr: str | None = None,
    resource_group: str | None = None,
    subscription: str | None = None,
) -> tuple[RegistryLogin, ImageRef]:
    """The login and the full image name (with --acr, the registry may be left out of IMAGE)."""
    if acr:
        from . import azure
        from .acr import acr_login, resolve_acr

        credential = azure.credential()
        found = resolve_acr(
            acr,
            subscription=subscription,
            resource_group=resource_group,
            token_credential=credential,
        )
        ref = ImageRef.parse(image, default_registry=found.login_server)
        return acr_login(found, token_credential=credential), ref
    ref = ImageRef.parse(image)
    return RegistryLogin(ref.registry, credentials_from_env()), ref
