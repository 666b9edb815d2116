"""SDK exceptions become the steps' own errors here, and only here.

Each step wraps its SDK calls in `azure_errors(...)` or `boto_errors(...)`, naming the resource
and the role or permission the caller needs; the messages are one line and hold no secrets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import AuthError, Conflict, NotFound, StepError, Unavailable


@contextlib.contextmanager
def azure_errors(what: str, *, role: str, fix_not_found: str = "") -> Iterator[None]:
    """Translate azure-core's exception hierarchy for an operation on `what`.

    `role` is the Azure role that grants the operation, named in the 403 message.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.identity import CredentialUnavailableError

    try:
        yield
    except CredentialUnavailableError:
        raise AuthError(
            f"no Azure credentials for {what}: log in with workload identity (OIDC), a managed "
            "identity or `az login`"
        ) from None
    except ResourceNotFoundError as exc:
        raise NotFound(
            f"{what} not found ({_code(exc)}){': ' + fix_not_found if fix_not_found else ''}"
        ) from None
    except ResourceExistsError as exc:
        raise Conflict(f"{what} already exists ({_code(exc)})") from None
    except ClientAuthenticationError as exc:
        if exc.status_code == 403:
            raise AuthError(
                f"access to {what} denied: the identity needs the role '{role}'"
            ) from None
        raise AuthError(
            f"Azure rejected the credentials for {what} ({_code(exc)}): log in again"
        ) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise Unavailable(f"{what} could not be reached: {_first_line(exc)}") from None
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise AuthError(
                f"access to {what} denied: the identity needs the role '{role}'"
            ) from None
        if exc.status_code in (429, 500, 502, 503, 504):
            raise Unavailable(
                f"{what} is unavailable ({exc.status_code}) after retries: try again later"
            ) from None
        raise StepError(f"{what}: Azure answered {exc.status_code} {_code(exc)}") from None


# Azure DevOps answers a missing PAT scope or role with one of these exception types (401/403).
_DEVOPS_DENIED = ("AccessDenied", "AccessCheck", "Unauthorized", "Security", "Permission")


@contextlib.contextmanager
def azure_devops_errors(what: str, *, permission: str, fix_not_found: str = "") -> Iterator[None]:
    """Translate the azure-devops SDK's (msrest) exceptions for an operation on `what`.

    `permission` names the PAT scope and role that grant the operation, for the 401/403 message.
    The SDK keeps no status code, only the server's exception type, so that is what is read.
    """
    from azure.devops.exceptions import (
        AzureDevOpsAuthenticationError,
        AzureDevOpsClientRequestError,
        AzureDevOpsServiceError,
    )
    from msrest.exceptions import ClientRequestError

    denied = f"the token may not {what}: it needs {permission}"
    try:
        yield
    except AzureDevOpsAuthenticationError:
        raise AuthError(
            f"Azure DevOps rejected the token trying to {what}: set a valid, unexpired "
            "AZURE_DEVOPS_EXT_PAT (or SYSTEM_ACCESSTOKEN in a pipeline)"
        ) from None
    except AzureDevOpsServiceError as exc:
        kind = exc.type_key or ""
        if any(word in kind for word in _DEVOPS_DENIED):
            raise AuthError(denied) from None
        if kind.endswith(("NotFoundException", "DoesNotExistException")) or "DoesNotExist" in kind:
            raise NotFound(
                f"{what}: not found{': ' + fix_not_found if fix_not_found else ''}"
            ) from None
        raise StepError(f"{what}: Azure DevOps answered {kind}: {_first_line(exc)}") from None
    except AzureDevOpsClientRequestError as exc:
        text = _first_line(exc)
        if "401 status" in text or "403 status" in text:
            raise AuthError(denied) from None
        if "404 status" in text:
            raise NotFound(
                f"{what}: not found{': ' + fix_not_found if fix_not_found else ''}"
            ) from None
        raise StepError(f"{what}: {text}") from None
    except ClientRequestError as exc:  # msrest: no answer at all, after its own retries
        raise Unavailable(
            f"Azure DevOps could not be reached to {what}: {_first_line(exc)}"
        ) from None


def _code(exc) -> str:
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) or getattr(exc, "reason", None) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
