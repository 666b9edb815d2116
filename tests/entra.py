"""A GitHub job's OIDC token service and Entra ID's token endpoint, on one local HTTPS server,
with assertions that expire as GitHub's do (minutes there, seconds here).

GitHub's side is its documented contract for custom OIDC clients: GET
ACTIONS_ID_TOKEN_REQUEST_URL (which carries `?api-version=2.0`) with `&audience=...` and
`Authorization: Bearer ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered `{"value": JWT}`. Entra's side is
the v2.0 client-credentials grant with a federated assertion (`client_assertion_type`
`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), as MSAL speaks it: the tenant's
OpenID configuration, then a form POST to its token endpoint; an assertion past its `exp` is
refused with AADSTS700024, as Entra refuses one (Azure/login#441, Azure/azure-cli#28708).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import jwt
from werkzeug import Request, Response

TENANT = "11111111-aaaa-bbbb-cccc-000000000002"
CLIENT_ID = "11111111-aaaa-bbbb-cccc-000000000001"
REQUEST_TOKEN = "ghs_fake_request_token_0123456789"
OIDC_PATH = "/_apis/pipelines/idtoken"
EXCHANGE = "api://AzureADTokenExchange"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_KEY = "fake-github-oidc-signing-key-of-32-bytes!"


@dataclass
class FakeTokenService:
    """GitHub's OIDC token service and Entra ID at BASE_URL; assertions live LIFETIME seconds."""

    base_url: str
    # Long enough for one exchange on a loaded machine (MSAL's discovery and token POST took
    # over a second there: a 1 s life failed a good sign-in), short enough to outlive in a test.
    lifetime: float = 3.0
    minted: list[str] = field(default_factory=list)  # assertions GitHub gave out
    granted: list[str] = field(default_factory=list)  # scopes Entra ID granted tokens for
    refused: list[str] = field(default_factory=list)  # Entra ID's refusals, its error codes

    def job_environment(self) -> dict[str, str]:
        """What a GitHub job with `id-token: write` and a federated identity has."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.base_url}{OIDC_PATH}?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
            "AZURE_CLIENT_ID": CLIENT_ID,
            "AZURE_TENANT_ID": TENANT,
            "AZURE_AUTHORITY_HOST": self.base_url,
        }

    def __call__(self, request: Request) -> Response:
        if request.path == OIDC_PATH:
            return self._github(request)
        if request.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            return self._configuration()
        if request.path == f"/{TENANT}/oauth2/v2.0/token" and request.method == "POST":
            return self._token(request)
        return _json({"error": "not_found", "path": request.path}, 404)

    def _github(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {REQUEST_TOKEN}":
            return _json({"message": "Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env"}, 401)
        if request.args.get("api-version") != "2.0":
            return _json({"message": "api-version 2.0 required"}, 400)
        now = time.time()
        claims = {
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:acme/shop:ref:refs/heads/main",
            "aud": request.args.get("audience", "https://github.com/acme"),
            "iat": int(now),
            "nbf": int(now),
            "exp": now + self.lifetime,  # fractional: a second-long life stays a second
            "jti": str(uuid.uuid4()),
        }
        assertion = jwt.encode(claims, SIGNING_KEY, algorithm="HS256")
        self.minted.append(assertion)
        return _json({"count": 1, "value": assertion})

    def _configuration(self) -> Response:
        base = f"{self.base_url}/{TENANT}"
        return _json(
            {
                "issuer": f"{base}/v2.0",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != CLIENT_ID:
            return self._refuse(400, "invalid_request", 900144, "unexpected grant or client")
        if form.get("client_assertion_type") != JWT_BEARER:
            return self._refuse(400, "invalid_client", 7000218, "no client assertion")
        try:
            claims = jwt.decode(
                form.get("client_assertion", ""),
                SIGNING_KEY,
                algorithms=["HS256"],
                audience=EXCHANGE,
            )
        except jwt.ExpiredSignatureError:
            return self._refuse(
                400,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        except jwt.InvalidTokenError as exc:
            return self._refuse(400, "invalid_client", 700211, f"bad assertion: {exc}")
        scope = form.get("scope", "")
        self.granted.append(scope)
        return _json(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": f"access-{claims['jti']}-{len(self.granted)}",
            }
        )

    def _refuse(self, status: int, error: str, code: int, text: str) -> Response:
        self.refused.append(f"AADSTS{code}")
        body = {
            "error": error,
            "error_description": f"AADSTS{code}: {text}",
            "error_codes": [code],
        }
        return _json(body, status)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
