"""SDK exceptions become the steps' own errors in one place: the real exception classes of
azure-core, azure-identity, the azure-devops SDK and botocore, each to its one-line message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.devops.exceptions import (
    AzureDevOpsAuthenticationError,
    AzureDevOpsClientRequestError,
    AzureDevOpsServiceError,
)
from azure.identity import CredentialUnavailableError
from botocore.exceptions import ClientError, NoCredentialsError

from aiship.clients.sdk_errors import azure_devops_errors, azure_errors, boto_errors
from aiship.support.errors import AuthError, Conflict, NotFound, StepError, Unavailable

WHAT = "container registry 'acr1'"


def with_status(exc: HttpResponseError, status: int) -> HttpResponseError:
    exc.status_code = status
    return exc


def raised_by(context, exc: BaseException) -> StepError:
    with pytest.raises(StepError) as caught, context:
        raise exc
    message = str(caught.value)
    assert "\n" not in message and WHAT.split("'")[1] in message
    return caught.value


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (CredentialUnavailableError("no env"), AuthError, "log in with workload identity"),
        (ResourceNotFoundError("gone"), NotFound, "not found (ResourceNotFoundError): check --acr"),
        (ResourceExistsError("there"), Conflict, "already exists"),
        (ResourceModifiedError("etag"), Conflict, "exists or changed meanwhile"),
        (with_status(ClientAuthenticationError("403"), 403), AuthError, "needs the role 'Reader'"),
        (with_status(ClientAuthenticationError("401"), 401), AuthError, "rejected the credentials"),
        (with_status(HttpResponseError("denied"), 403), AuthError, "needs the role 'Reader'"),
        (with_status(HttpResponseError("busy"), 429), Unavailable, "(429) after retries"),
        (with_status(HttpResponseError("odd"), 409), StepError, "Azure answered 409"),
        (ServiceRequestError("connection refused"), Unavailable, "could not be reached"),
    ],
)
def test_azure_core_exceptions(exc, kind, words):
    error = raised_by(azure_errors(WHAT, role="Reader", fix_not_found="check --acr"), exc)

    assert type(error) is kind and words in str(error)


def test_a_fix_for_denied_replaces_the_role():
    error = raised_by(
        azure_errors(WHAT, role="Reader", fix_denied="the SAS must allow read (r)"),
        with_status(HttpResponseError("denied"), 403),
    )

    assert str(error).endswith(": the SAS must allow read (r)")


def devops_service_error(type_key: str) -> AzureDevOpsServiceError:
    wrapped = SimpleNamespace(
        inner_exception=None,
        message=f"{type_key}: the server's words",
        exception_id=None,
        type_name=type_key,
        type_key=type_key,
        error_code=0,
        event_id=0,
        custom_properties=None,
    )
    return AzureDevOpsServiceError(wrapped)


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (AzureDevOpsAuthenticationError("expired"), AuthError, "rejected the token"),
        (devops_service_error("UnauthorizedRequestException"), AuthError, "it needs the scope"),
        (devops_service_error("ProjectDoesNotExistWithNameException"), NotFound, "not found"),
        (devops_service_error("InvalidRequestException"), StepError, "answered Invalid"),
        (AzureDevOpsClientRequestError("Operation returned a 403 status"), AuthError, "needs"),
        (AzureDevOpsClientRequestError("Operation returned a 404 status"), NotFound, "not found"),
    ],
)
def test_azure_devops_exceptions(exc, kind, words):
    error = raised_by(azure_devops_errors(f"read {WHAT}", permission="the scope"), exc)

    assert type(error) is kind and words in str(error)


def boto_error(code: str, status: int) -> ClientError:
    body = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(body, "GetObject")


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (NoCredentialsError(), AuthError, "no AWS credentials"),
        (boto_error("NoSuchKey", 404), NotFound, "not found (NoSuchKey)"),
        (boto_error("PreconditionFailed", 412), Conflict, "already exists"),
        (boto_error("ExpiredToken", 400), AuthError, "rejected the credentials"),
        (boto_error("AccessDenied", 403), AuthError, "it needs s3:GetObject"),
        (boto_error("SlowDown", 503), Unavailable, "after retries"),
        (boto_error("InvalidRange", 416), StepError, "S3 answered 416 InvalidRange"),
    ],
)
def test_boto_exceptions(exc, kind, words):
    error = raised_by(boto_errors(WHAT, permission="s3:GetObject"), exc)

    assert type(error) is kind and words in str(error)


def test_a_transport_error_never_quotes_a_sas():
    exc = ServiceRequestError("cannot reach https://a.blob.core.windows.net/m?sv=1&sig=SECRET")

    error = raised_by(azure_errors(WHAT, role="Reader"), exc)

    assert "SECRET" not in str(error)
