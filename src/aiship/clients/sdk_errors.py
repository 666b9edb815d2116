"""SDK exceptions become the steps' own errors here, and only here.

Each step wraps its SDK calls in `azure_errors(...)` or `boto_errors(...)`, naming the resource
and the role or permission the caller needs; the messages are one line and hold no secrets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..support.errors import AuthError, Conflict, NotFound, StepError, Unavailable
from ..support.logs import redact

# Storage answers a bad signature or key with 403 too; that is a credential, not a role, problem.
_AZURE_REJECTED = ("AuthenticationFailed", "InvalidAuthenticationInfo")


@contextlib.contextmanager
def azure_errors(
    what: str,
    *,
    role: str,
    fix_not_found: str = "",
    fix_denied: str = "",
    fix_credentials: str = "log in again",
) -> Iterator[None]:
    """Translate azure-core's exception hierarchy for an operation on `what`.

    `role` is the Azure role that grants the operation, named in the 403 message unless
    `fix_denied` says what to do instead (a SAS lacks a permission, say).
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        IncompleteReadError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.identity import CredentialUnavailableError

    fix = fix_denied or f"the identity needs the role {role!r}"

    def denied(exc) -> str:
        return f"access to {what} denied ({_code(exc)}): {fix}"

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
    except ResourceModifiedError as exc:  # a conditional write lost: If-None-Match and friends
        raise Conflict(f"{what} exists or changed meanwhile ({_code(exc)})") from None
    except ClientAuthenticationError as exc:
        if exc.status_code == 403 and _code(exc) not in _AZURE_REJECTED:
            raise AuthError(denied(exc)) from None
        raise AuthError(
            f"Azure rejected the credentials for {what} ({_code(exc)}): {fix_credentials}"
        ) from None
    except (ServiceRequestError, ServiceResponseError, IncompleteReadError) as exc:
        raise Unavailable(f"{what} could not be reached: {_first_line(exc)}") from None
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise AuthError(denied(exc)) from None
        if exc.status_code in (429, 500, 502, 503, 504):
            raise Unavailable(
                f"{what} is unavailable ({exc.status_code}) after retries: try again later"
            ) from None
        raise StepError(f"{what}: Azure answered {exc.status_code} {_code(exc)}") from None


@contextlib.contextmanager
def azureml_errors(what: str, *, role: str, fix_not_found: str = "") -> Iterator[None]:
    """azure_errors, plus the azure-ai-ml SDK's own exceptions (raised before or instead of an
    HTTP error): a changed asset path is a version that exists with other files."""
    from azure.ai.ml.exceptions import AssetPathException, MlException
    from azure.core.exceptions import HttpResponseError

    with azure_errors(what, role=role, fix_not_found=fix_not_found):
        try:
            yield
        except HttpResponseError as exc:
            # The service's answer to a PUT that would change an existing version's files (the
            # SDK means to turn it into AssetPathException but compares the whole message).
            if "Asset paths cannot be updated" not in str(getattr(exc.error, "message", "")):
                raise
            raise Conflict(
                f"{what} already exists with other files: versions are immutable"
            ) from None
        except AssetPathException:
            raise Conflict(
                f"{what} already exists with other files: versions are immutable"
            ) from None
        except MlException as exc:
            raise StepError(f"{what}: Azure ML refused it: {_first_line(exc)}") from None


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


# S3 error codes by meaning; HTTP status decides when the code is not one of these.
_S3_NOT_FOUND = ("NoSuchBucket", "NoSuchKey", "NotFound", "404")
_S3_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")
_S3_REJECTED = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
)


@contextlib.contextmanager
def boto_errors(what: str, *, permission: str, fix_not_found: str = "") -> Iterator[None]:
    """Translate botocore's and s3transfer's exceptions for an operation on `what`.

    `permission` is the IAM action that grants the operation, named in the 403 message.
    """
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from s3transfer.exceptions import RetriesExceededError

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise AuthError(
            f"no AWS credentials for {what}: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or assume a role (OIDC in CI)"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _S3_NOT_FOUND:
            raise NotFound(
                f"{what} not found ({code}){': ' + fix_not_found if fix_not_found else ''}"
            ) from None
        if code in _S3_CONFLICT or status in (409, 412):
            raise Conflict(f"{what} already exists ({code})") from None
        if code in _S3_REJECTED:
            raise AuthError(
                f"AWS rejected the credentials for {what} ({code}): renew them"
            ) from None
        if status == 403:
            raise AuthError(f"access to {what} denied ({code}): it needs {permission}") from None
        if status == 429 or status >= 500:
            raise Unavailable(
                f"{what} is unavailable ({status} {code}) after retries: try again later"
            ) from None
        raise StepError(f"{what}: S3 answered {status} {code}") from None
    except (BotoConnectionError, HTTPClientError, RetriesExceededError) as exc:
        raise Unavailable(f"{what} could not be reached: {_first_line(exc)}") from None


def _code(exc) -> str:
    storage_code = getattr(exc, "error_code", None)  # azure-storage: a str enum
    if storage_code:
        return str(getattr(storage_code, "value", storage_code))
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) or getattr(exc, "reason", None) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    """The exception's first line, redacted: transport errors may quote a URL with its SAS."""
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__
