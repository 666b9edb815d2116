"""Which registry login an image command uses, from --image and --acr or the environment.

`--acr NAME [--resource-group RG] [--subscription S]` resolves an Azure Container Registry and logs
in through Entra ID; without it, REGISTRY_USERNAME/REGISTRY_PASSWORD, or anonymous.
"""

from __future__ import annotations

from typing import Any

from .registry import ImageRef, RegistryLogin, credentials_from_env, registry_of


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


def base_image_login(
    base_image: str, target: str, *, acr: Any = None, token_credential: Any = None
) -> RegistryLogin | None:
    """How `docker build` signs in to pull BASE_IMAGE (e.g. a mirror of python:3.11-slim): as
    the push does when it is the registry of TARGET (the resolved `acr`, or REGISTRY_USERNAME/
    REGISTRY_PASSWORD), through Entra ID for any other ACR; None: docker's own configuration
    (a public image, or a `docker login` made before the step)."""
    from . import acr as acrs

    host = registry_of(base_image)
    if host == registry_of(target):
        if acr is not None:
            return acrs.acr_login(acr, token_credential=token_credential)
        credentials = credentials_from_env()
        return RegistryLogin(host, credentials) if credentials else None
    name = acrs.acr_name_of(host)
    if name is None:
        return None
    return acrs.login_at(host, name, token_credential=token_credential)
