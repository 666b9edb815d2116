"""Azure DevOps through its Python SDK: a connection signed in with a PAT or the pipeline's own
token, and the REST calls the SDK's models cannot make."""

from __future__ import annotations

from collections.abc import Mapping

PAT_VARIABLE, PIPELINE_TOKEN_VARIABLE = "AZURE_DEVOPS_EXT_PAT", "SYSTEM_ACCESSTOKEN"
TOKEN_VARIABLES = (PAT_VARIABLE, PIPELINE_TOKEN_VARIABLE)

# The SDK's models for check configurations and pipelines drop fields we need (`settings`; a
# YAML pipeline's `path` and `repository`), so those calls go through the SDK client's own
# `_send`: the same connection, credentials, api-version negotiation and retries, no second HTTP
# stack. The location ids and versions are the ones the SDK's own clients use. send_json is the
# one place that reaches into the SDK's client.
CHECK_CONFIGURATIONS = ("86c8381e-5aee-4cde-8ae4-25c0c7f5eaea", "7.1-preview.1")
PIPELINES_API = ("28e1305e-2afe-47bf-abaf-cbb0e6a91988", "7.1-preview.1")


def connect(org_url: str, token_variable: str, token: str):
    """An SDK connection: a PAT signs in as Basic, a pipeline's System.AccessToken as Bearer."""
    from azure.devops.connection import Connection
    from msrest.authentication import BasicAuthentication, BasicTokenAuthentication

    creds = (
        BasicTokenAuthentication({"access_token": token})
        if token_variable == PIPELINE_TOKEN_VARIABLE
        else BasicAuthentication("", token)
    )
    return Connection(base_url=org_url.rstrip("/"), creds=creds, user_agent="aiship-setup")


def send_json(
    client,
    method: str,
    location: tuple[str, str],
    route_values: dict,
    content: object = None,
    query: Mapping[str, str] | None = None,
) -> dict:
    """One REST call through an SDK client's own `_send` (see CHECK_CONFIGURATIONS above)."""
    location_id, version = location
    response = client._send(
        http_method=method,
        location_id=location_id,
        version=version,
        route_values=route_values,
        query_parameters=dict(query or {}),
        content=content,
    )
    return response.json() if response.content else {}
