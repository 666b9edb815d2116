"""Real registries (Debian's docker-registry), a real Docker engine, and the ACR stand-in.

The ACR stand-in: the real registry with token auth (it checks JWTs signed by a key it trusts),
a fake of ACR's token service (/oauth2/exchange, /oauth2/token) and of a managed identity endpoint
(the real DefaultAzureCredential gets its Entra ID token there), and a local HTTPS fake of
Resource Manager for the real azure-mgmt-containerregistry SDK.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aiship.clients.azure import ACR_AUDIENCE
from aiship.clients.docker import docker
from aiship.clients.registry import DOCKER_MANIFEST
from aiship.local.registry_server import LocalRegistry, TokenAuth, write_htpasswd
from aiship.support.ports import free_port
from tests.clirun import run_steps
from tests.contracts.held import Held

USER = "ci-pusher"
PASSWORD = "htpasswd-Secret-Pw-7f3a"  # must never show up in a log
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
RESOURCE_GROUP = "rg-images"
ACR_NAME = "aishipacr"
REVISION = "0123456789abcdef0123456789abcdef01234567"
MODEL_SHA256 = "ab" * 32
STEP_TIMEOUT = 180


@dataclass(frozen=True)
class StepRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def log(self) -> str:
        return self.stdout + self.stderr

    @property
    def outputs(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_step(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> StepRun:
    """`python -m aiship ARGS --json` with no registry or Azure settings but ENV's (in CWD, else
    in the project)."""
    where = {"cwd": cwd} if cwd else {}
    done = run_steps(
        *args,
        "--json",
        env=env,
        drop=("REGISTRY_", "AZURE_", "ACR_"),
        timeout=STEP_TIMEOUT,
        **where,
    )
    return StepRun(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def registry(tmp_path) -> Iterator[LocalRegistry]:
    """docker-registry on 127.0.0.1 without auth."""
    with LocalRegistry(tmp_path / "registry") as running:
        yield running


@pytest.fixture
def auth_registry(tmp_path) -> Iterator[LocalRegistry]:
    """docker-registry on 127.0.0.1 with htpasswd (Basic) auth for USER / PASSWORD."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    with LocalRegistry(tmp_path / "auth-registry", htpasswd=htpasswd) as running:
        yield running


def put_image(
    registry: LocalRegistry,
    repository: str,
    tag: str,
    labels: dict[str, str],
    *,
    auth: tuple[str, str] | None = None,
    bearer: str | None = None,
    content: bytes = b"hello\n",
) -> str:
    """Upload a one-layer image straight through the registry API; returns its digest."""
    layer = _tar_gz({"hello.txt": content})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [_digest(_ungzip(layer))]},
        }
    ).encode()
    session = requests.Session()
    session.auth = auth
    if bearer:
        session.headers["Authorization"] = f"Bearer {bearer}"
    for blob in (layer, config):
        started = session.post(f"{registry.url}/v2/{repository}/blobs/uploads/", timeout=10)
        started.raise_for_status()
        location = started.headers["Location"]
        location = location if location.startswith("http") else registry.url + location
        session.put(
            location, params={"digest": _digest(blob)}, data=blob, timeout=10
        ).raise_for_status()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _digest(layer),
                }
            ],
        }
    ).encode()
    session.put(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
        timeout=10,
    ).raise_for_status()
    return _digest(manifest)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_archive(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of FILES (name -> bytes): what a layer's diff_id is the digest of."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    return gzip.compress(tar_archive(files))


def _ungzip(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data)


# --- Docker ------------------------------------------------------------------------------------


class LocalImages:
    """make(name, labels, content) -> NAME: a one-file image from `docker import`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []
        self.ids: list[str] = []

    def __call__(self, name: str, labels: dict[str, str], content: bytes = b"hello\n") -> str:
        tarball = self.folder / f"rootfs-{uuid.uuid4().hex}.tar"
        tarball.write_bytes(tar_archive({"hello.txt": content}))
        changes = " ".join(f"{key}={value}" for key, value in labels.items())
        made = docker(["import", "--change", f"LABEL {changes}", str(tarball), name], timeout=60)
        self.ids.append(made.strip())
        return self.forget(name)

    def forget(self, name: str) -> str:
        """Remove NAME at the end of the test too (a tag a step added)."""
        self.names.append(name)
        return name

    def remove(self) -> None:
        """Tags first, then the images by id: that also drops the digests a push recorded."""
        for references in (sorted(set(self.names)), self.ids):
            if references:
                docker(["rmi", "--force", *references], timeout=60, check=False)


@pytest.fixture
def local_image(docker_engine, tmp_path) -> Iterator[LocalImages]:
    images = LocalImages(tmp_path)
    yield images
    images.remove()


# --- Azure Container Registry stand-in ---------------------------------------------------------


@dataclass
class AcrTokenService:
    """ACR's token side: /oauth2/exchange and /oauth2/token, plus a managed identity endpoint.

    `role` is what the signed-in identity holds on the registry: "AcrPush", "AcrPull" or None.
    """

    server: HTTPServer
    service: str
    issuer: str
    signing_key: bytes = field(repr=False)
    x5c: list[str] = field(repr=False)
    role: str | None = "AcrPush"
    exchange_refused: bool = False
    # The Azure Policy "ARM audience token authentication disabled" is in force by default.
    arm_audience_accepted: bool = False
    resource_manager: str = ""  # the ARM audience of the cloud in use
    firewall: bool = False  # the registry's network rules leave this client out
    aad_tokens: set[str] = field(default_factory=set)
    audiences: dict[str, str] = field(default_factory=dict)  # Entra ID token -> its audience
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (path, grant)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    @property
    def secrets(self) -> list[str]:
        return [*self.aad_tokens, *self.refresh_tokens, *self.access_tokens]

    def install(self) -> None:
        self.server.expect_request("/msi/token").respond_with_handler(self._managed_identity)
        self.server.expect_request("/oauth2/exchange").respond_with_handler(self._exchange)
        self.server.expect_request("/oauth2/token").respond_with_handler(self._token)

    def _managed_identity(self, request: Request) -> Response:
        claims = {"tid": "tenant-1", "oid": "ci-identity", "nonce": secrets.token_urlsafe(16)}
        token = jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")
        self.aad_tokens.add(token)
        self.audiences[token] = request.args.get("resource", "").rstrip("/")
        self.calls.append(("/msi/token", "managed_identity"))
        body = {
            "access_token": token,
            "expires_on": str(int(time.time()) + 3600),
            "resource": request.args.get("resource", ""),
            "token_type": "Bearer",
        }
        return Response(json.dumps(body), content_type="application/json")

    def _exchange(self, request: Request) -> Response:
        form = request.form
        self.calls.append(("/oauth2/exchange", form.get("grant_type", "")))
        if form.get("grant_type") != "access_token" or form.get("service") != self.service:
            return _json_error(400, "UNSUPPORTED", "bad exchange request")
        if self.firewall:
            message = (
                "client with IP '203.0.113.7' is not allowed access. "
                "Refer https://aka.ms/acr/firewall to grant access."
            )
            return _json_error(403, "DENIED", message)
        token = form.get("access_token", "")
        if token not in self.aad_tokens or self.exchange_refused:
            return _json_error(401, "UNAUTHORIZED", "the access token is not valid")
        audience = self.audiences.get(token)
        accepted = {ACR_AUDIENCE} | (
            {self.resource_manager} if self.arm_audience_accepted else set()
        )
        if audience not in accepted:
            return _json_error(401, "UNAUTHORIZED", f"the token's audience {audience} is refused")
        refresh = f"acr-refresh-{secrets.token_urlsafe(24)}"
        self.refresh_tokens.add(refresh)
        return Response(json.dumps({"refresh_token": refresh}), content_type="application/json")

    def _token(self, request: Request) -> Response:
        """POST grant_type=refresh_token (our client), or GET with Basic (the Docker engine)."""
        if request.method == "POST":
            grant = request.form.get("grant_type", "")
            refresh = request.form.get("refresh_token") or request.form.get("password", "")
            scopes = request.form.getlist("scope")
        else:
            grant = "basic"
            refresh = request.authorization.password if request.authorization else ""
            scopes = request.args.getlist("scope")
        self.calls.append(("/oauth2/token", grant))
        if refresh not in self.refresh_tokens:
            return _json_error(401, "UNAUTHORIZED", "the refresh token is not valid")
        token = self.mint(scopes)
        body = {"access_token": token, "token": token, "expires_in": 300}
        return Response(json.dumps(body), content_type="application/json")

    def mint(self, scopes: list[str]) -> str:
        """A signed access token for SCOPES, limited to what `role` allows."""
        granted = {"AcrPush": {"pull", "push"}, "AcrPull": {"pull"}}.get(self.role or "", set())
        access = []
        for scope in " ".join(scopes).split():
            kind, name, actions = scope.split(":", 2)
            allowed = sorted(set(actions.split(",")) & granted)
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "ci-identity",
            "aud": self.service,
            "iat": now,
            "nbf": now - 10,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self.signing_key, algorithm="ES256", headers={"x5c": self.x5c})
        self.access_tokens.append(token)
        return token


def _json_error(status: int, code: str, message: str) -> Response:
    body = {"errors": [{"code": code, "message": message}]}
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class AcrStandIn:
    registry: LocalRegistry
    tokens: AcrTokenService
    arm: object  # the HttpsFake of tests/conftest.py
    name: str = ACR_NAME
    admin_user_enabled: bool = False
    provisioning_state: str = "Succeeded"
    pages: int = 1  # how many pages the subscription's registry list comes in (nextLink)
    throttled: int = 0  # how many Resource Manager calls answer 429 before the real answer

    @property
    def login_server(self) -> str:
        return self.registry.host

    def registry_path(self, resource_group: str = RESOURCE_GROUP, name: str = ACR_NAME) -> str:
        return (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.ContainerRegistry/registries/{name}"
        )

    def resource(self) -> dict:
        return {
            "id": self.registry_path(),
            "name": self.name,
            "type": "Microsoft.ContainerRegistry/registries",
            "location": "westeurope",
            "sku": {"name": "Standard", "tier": "Standard"},
            "properties": {
                "loginServer": self.login_server,
                "provisioningState": self.provisioning_state,
                "adminUserEnabled": self.admin_user_enabled,
            },
        }

    def serve_resource_manager(self) -> None:
        """GET registries/{name} and the subscription's list; anything else: ResourceNotFound."""
        server = self.arm.server
        server.expect_request(self.registry_path()).respond_with_handler(
            self._arm(lambda: self.resource())
        )
        listing = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerRegistry/registries"
        server.expect_request(listing).respond_with_handler(self._arm(self._listing, listing))
        server.expect_request(re.compile(".*")).respond_with_json(
            {"error": {"code": "ResourceNotFound", "message": "not found"}}, status=404
        )

    def _listing(self, request: Request, path: str) -> dict:
        """The registry on the last of `pages` pages, the pages before it empty, each linked."""
        page = int(request.args.get("page", "1"))
        body: dict = {"value": [self.resource()] if page == self.pages else []}
        if page < self.pages:
            query = f"api-version={request.args.get('api-version')}&page={page + 1}"
            body["nextLink"] = f"{self.arm.url}{path}?{query}"
        return body

    def _arm(self, body, *args):
        def handler(request: Request) -> Response:
            if self.throttled > 0:
                self.throttled -= 1
                error = {"error": {"code": "TooManyRequests", "message": "throttled"}}
                return Response(
                    json.dumps(error),
                    status=429,
                    headers={"Retry-After": "0"},
                    content_type="application/json",
                )
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.tokens.audiences.get(token) != self.arm.url:
                error = {"error": {"code": "InvalidAuthenticationToken", "message": "audience"}}
                return Response(json.dumps(error), status=401, content_type="application/json")
            answer = body(request, *args) if args else body()
            return Response(json.dumps(answer), content_type="application/json")

        return handler

    def env(self) -> dict[str, str]:
        """How a CI job finds Azure: a managed identity, the subscription, Resource Manager."""
        return {
            "IDENTITY_ENDPOINT": f"{self.tokens.url}/msi/token",
            "IDENTITY_HEADER": "managed-identity-header",
            "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "AZURE_RESOURCE_MANAGER_URL": self.arm.url,
            "REQUESTS_CA_BUNDLE": str(self.arm.ca_pem),
            "SSL_CERT_FILE": str(self.arm.ca_pem),
        }


@pytest.fixture
def acr(tmp_path, https_fake) -> Iterator[AcrStandIn]:
    """A registry that only accepts tokens of the fake ACR token service; ARM describes it."""
    ca = trustme.CA()
    signer = ca.issue_cert("acr-token-signer")
    bundle = tmp_path / "token-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    x5c = [
        base64.b64encode(
            x509.load_pem_x509_certificate(pem.bytes()).public_bytes(Encoding.DER)
        ).decode()
        for pem in signer.cert_chain_pems
    ]
    token_server = HTTPServer(host="127.0.0.1", port=0)
    token_server.start()
    try:
        issuer = "aiship-fake-acr"
        port = free_port()
        service = f"127.0.0.1:{port}"
        tokens = AcrTokenService(
            token_server,
            service=service,
            issuer=issuer,
            signing_key=signer.private_key_pem.bytes(),
            x5c=x5c,
        )
        tokens.install()
        auth = TokenAuth(f"{tokens.url}/oauth2/token", service, issuer, rootcertbundle=bundle)
        registry = LocalRegistry(tmp_path / "acr-registry", port=port, token=auth)
        with registry:
            tokens.resource_manager = https_fake.url
            stand_in = AcrStandIn(registry, tokens, https_fake)
            stand_in.serve_resource_manager()
            yield stand_in
        held = Held("acr")  # the token service, as ACR's data-plane description has it
        for request, response in token_server.log:
            # Not /msi/token (Entra ID's side), nor `docker login`'s probe of /oauth2/token
            # without a scope, which Docker sends and ACR answers though the description
            # makes `scope` required.
            login_probe = request.method == "GET" and "scope" not in request.args
            if request.path.startswith("/oauth2/") and not login_probe:
                held.observe(request, response)
        assert held.violations == [], held.violations
    finally:
        token_server.clear()
        token_server.stop()
