"""A local stand-in for an Azure Machine Learning workspace or registry, for the real SDK.

- Control plane: an HTTPS fake (trustme CA) of the operations the SDK calls for a model store:
  cloud metadata; for a workspace, Resource Manager's datastore get and listSecrets and model
  versions list/get/create; for a registry, registry discovery and, on the regional front end it
  names, model versions list/get/create (asynchronous), pending uploads (tempdatarefs: a new
  container and a write SAS) and read SAS for a version's blobs (datarefs). A managed identity
  endpoint hands the real DefaultAzureCredential its token.
- The blobs: a real Azurite over HTTPS. The SDK builds the account URL itself,
  https://ACCOUNT.blob.<the cloud's storage suffix>, here devstoreaccount1.blob.core.localhost:PORT;
  Azurite reads the account from such a production-style host name. The name does not resolve
  on this machine, so the clients reach it through a CONNECT proxy on 127.0.0.1 (HTTPS_PROXY, the
  standard way through a corporate proxy) that only tunnels *.blob.core.localhost to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import socketserver
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import trustme
from azure.storage.blob import BlobSasPermissions, generate_container_sas
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aiship.clients.stores.azure_blob import DEV_ACCOUNT, DEV_ACCOUNT_KEY
from aiship.local.azurite import Azurite
from aiship.local.server import HOST
from tests.contracts.held import Held

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
RESOURCE_GROUP = "rg-ml"
WORKSPACE = "ws-models"
REGISTRY = "reg-models"
TENANT = "66666666-7777-8888-9999-000000000000"
DATASTORE = "workspaceblobstore"
CLOUD = "AiShipLocal"
BLOB_SUFFIX = ".blob.core.localhost"  # the blob SDK finds the account name before ".blob.core."
PROVIDER = "/providers/Microsoft.MachineLearningServices/"
# Where discovery sends the SDK for a registry's assets, below the region's front end.
REGISTRY_FRONT_END = "/mferp/managementfrontend"
DISCOVERY = "/registrymanagement/v1.0/registries"


class HttpsAzurite(Azurite):
    """Azurite serving HTTPS with a certificate for devstoreaccount1.blob.core.localhost."""

    name = "Azurite (HTTPS)"

    def __init__(self, cert: Path, key: Path, ca_pem: Path, **options) -> None:
        super().__init__(**options)
        self.cert, self.key, self.ca_pem = cert, key, ca_pem

    @property
    def account_url(self) -> str:
        return f"https://{HOST}:{self.port}/{DEV_ACCOUNT}"

    def command(self) -> list[str]:
        return [*super().command(), "--cert", str(self.cert), "--key", str(self.key)]

    def probe(self) -> bool:
        requests.get(f"{self.account_url}?comp=list", timeout=1, verify=str(self.ca_pem))
        return True


class _Tunnel(socketserver.BaseRequestHandler):
    """CONNECT HOST:PORT for HOST under .blob.core.localhost: a byte pipe to 127.0.0.1:PORT."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = self.request.recv(1024)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, _, port = target.rpartition(":")
        self.server.asked.append(target)
        if method != "CONNECT" or not host.endswith(BLOB_SUFFIX):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((HOST, int(port)))
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        back = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
        back.start()
        _pipe(self.request, upstream)
        back.join(timeout=30)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class TunnelProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), _Tunnel)
        self.asked: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"


@dataclass
class DataPath:
    """The HTTPS Azurite, the tunnel to it, and the CA that both TLS fakes use."""

    azurite: HttpsAzurite
    proxy: TunnelProxy
    ca: trustme.CA
    ca_pem: Path

    @property
    def storage_suffix(self) -> str:
        return f"core.localhost:{self.azurite.port}"

    @property
    def blob_url(self) -> str:
        """The account's URL as the SDK builds it from the cloud's storage suffix."""
        return f"https://{DEV_ACCOUNT}{BLOB_SUFFIX}:{self.azurite.port}"

    def service(self):
        from azure.storage.blob import BlobServiceClient

        # Straight to 127.0.0.1 (path style): the test's own access, behind the SDK's back.
        return BlobServiceClient(
            self.azurite.account_url,
            credential={"account_name": DEV_ACCOUNT, "account_key": DEV_ACCOUNT_KEY},
            connection_verify=str(self.ca_pem),
        )

    def container(self, name: str):
        return self.service().get_container_client(name)


@pytest.fixture(scope="session", name="azureml_data_path")
def data_path_fixture(tmp_path_factory) -> Iterator[DataPath]:
    folder = tmp_path_factory.mktemp("azureml-tls")
    ca = trustme.CA()
    ca_pem = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    blob_cert = ca.issue_cert(f"{DEV_ACCOUNT}{BLOB_SUFFIX}", HOST)
    cert, key = folder / "blob.pem", folder / "blob.key"
    cert.write_bytes(b"".join(pem.bytes() for pem in blob_cert.cert_chain_pems))
    blob_cert.private_key_pem.write_to_path(str(key))
    proxy = TunnelProxy()
    proxy.thread.start()
    try:
        with HttpsAzurite(cert, key, ca_pem, log_path=folder / "azurite.log") as azurite:
            yield DataPath(azurite, proxy, ca, ca_pem)
    finally:
        proxy.shutdown()
        proxy.server_close()


@dataclass
class AzureMLFake:
    """One workspace (with one blob datastore) or one registry, as `form` says; `mode` makes the
    control plane misbehave."""

    server: HTTPServer
    data: DataPath
    container: str  # the datastore's, or the registry's storage
    form: str = "workspace"  # or "registry"
    mode: str = ""  # "", "down" (503), "refused" (401), "denied" (403)
    models: dict[tuple[str, str], dict] = field(default_factory=dict)
    # Versions another publisher registers between our check and our PUT: unseen until the PUT.
    raced: dict[tuple[str, str], dict] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)  # "METHOD path-after-workspace-or-registry"

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    @property
    def store_url(self) -> str:
        if self.form == "registry":
            return f"azureml://registries/{REGISTRY}"
        return (
            f"azureml://subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
            f"/workspaces/{WORKSPACE}"
        )

    @property
    def resource_id(self) -> str:
        group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}{PROVIDER}"
        return f"{group}{self.form_plural}/{REGISTRY if self.form == 'registry' else WORKSPACE}"

    @property
    def resource_path(self) -> str:
        """Where the SDK finds it: Resource Manager, or the registry's regional front end."""
        front_end = REGISTRY_FRONT_END if self.form == "registry" else ""
        return front_end + self.resource_id

    def env(self) -> dict[str, str]:
        """How the SDK finds this cloud, its identity and the way to the blobs."""
        ca = str(self.data.ca_pem)
        return {
            "ARM_CLOUD_METADATA_URL": f"{self.url}/metadata/endpoints?api-version=2022-09-01",
            "AZUREML_CURRENT_CLOUD": CLOUD,
            "REGISTRY_DISCOVERY_ENDPOINT_URL": f"{self.url}/",
            "IDENTITY_ENDPOINT": f"{self.url}/msi/token",
            "IDENTITY_HEADER": "managed-identity-header",
            "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "HTTPS_PROXY": self.data.proxy.url,
            "NO_PROXY": HOST,  # not "localhost": requests would skip the proxy for *.localhost
        }

    def install(self) -> None:
        self.server.expect_request("/metadata/endpoints").respond_with_handler(self._metadata)
        self.server.expect_request("/msi/token").respond_with_handler(self._token)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._control_plane)

    def _metadata(self, request: Request) -> Response:
        cloud = {
            "name": CLOUD,
            "portal": "https://portal.aiship.localhost/",
            "resourceManager": f"{self.url}/",
            "authentication": {"loginEndpoint": f"{self.url}/", "audiences": [f"{self.url}/"]},
            "suffixes": {"storage": self.data.storage_suffix},
        }
        return _json([cloud])

    def _token(self, request: Request) -> Response:
        token = f"ml-token-{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        body = {
            "access_token": token,
            "expires_on": str(int(time.time()) + 3600),
            "resource": request.args.get("resource", ""),
            "token_type": "Bearer",
        }
        return _json(body)

    def _control_plane(self, request: Request) -> Response:
        discovery = request.path == f"{DISCOVERY}/{REGISTRY}/discovery"
        if not (discovery or request.path.startswith(self.resource_path + "/")):
            return _error(404, "ResourceNotFound", f"{request.path} not found")
        rest = "/discovery" if discovery else request.path[len(self.resource_path) :]
        self.calls.append(f"{request.method} {rest}")
        if self.mode == "down":
            return _error(503, "ServiceUnavailable", "try later", retry_after="0")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.mode == "refused" or token not in self.tokens:
            return _error(401, "InvalidAuthenticationToken", "the access token is invalid")
        if self.mode == "denied":
            return _error(403, "AuthorizationFailed", "no authorization to perform the action")
        if discovery:
            return _json(self.discovery())
        parts = rest.strip("/").split("/")
        routes = {
            ("workspace", "datastores"): self._datastore,
            ("workspace", "models"): self._model,
            ("registry", "models"): self._model,
            ("registry", "tempdatarefs"): self._blob_reference,
            ("registry", "datarefs"): self._blob_reference,
        }
        route = routes.get((self.form, parts[0]))
        if route is None:
            return _error(404, "ResourceNotFound", f"{rest} not found")
        return route(request, parts)

    def discovery(self) -> dict:
        return {
            "registryName": REGISTRY,
            "tenantId": TENANT,
            "primaryRegion": "local",
            "regions": ["local"],
            "subscriptionId": SUBSCRIPTION,
            "resourceGroup": RESOURCE_GROUP,
            "primaryRegionResourceProviderUri": f"{self.url}/",
        }

    def _datastore(self, request: Request, parts: list[str]) -> Response:
        if parts[1:2] != [DATASTORE]:
            return _error(404, "UserError", "datastore not found")
        if parts[2:] == ["listSecrets"] and request.method == "POST":
            return _json({"secretsType": "AccountKey", "key": DEV_ACCOUNT_KEY})
        if parts[2:] == [] and request.method == "GET":
            return _json(self.datastore())
        return _error(405, "MethodNotAllowed", "not served by the fake")

    def datastore(self) -> dict:
        return {
            "id": f"{self.resource_id}/datastores/{DATASTORE}",
            "name": DATASTORE,
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": DEV_ACCOUNT,
                "containerName": self.container,
                "endpoint": self.data.storage_suffix,
                "protocol": "https",
                "credentials": {
                    "credentialsType": "AccountKey",
                    "secrets": {"secretsType": "AccountKey"},
                },
                "isDefault": True,
            },
        }

    def _blob_reference(self, request: Request, parts: list[str]) -> Response:
        """tempdatarefs: where a new version's files go (a new container of the registry's, with
        a SAS that may write); datarefs: a read SAS for the blob URI of a stored version."""
        if len(parts) != 4 or parts[2] != "versions":
            return _error(404, "ResourceNotFound", "not served by the fake")
        if parts[0] == "tempdatarefs" and request.method == "PUT":
            container = f"{self.container}-{uuid.uuid4().hex[:8]}"
            self.data.container(container).create_container()
            blob_uri = f"{self.data.blob_url}/{container}"
            permission = BlobSasPermissions(read=True, create=True, write=True)
        elif parts[0] == "datarefs" and request.method == "POST":
            blob_uri = request.get_json()["blobUri"]
            container = blob_uri.removeprefix(self.data.blob_url + "/").split("/", 1)[0]
            permission = BlobSasPermissions(read=True)
        else:
            return _error(405, "MethodNotAllowed", "not served by the fake")
        sas = generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_ACCOUNT_KEY,
            permission=permission,
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        reference = {
            "blobUri": blob_uri,
            "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{sas}"},
            "storageAccountArmId": f"/subscriptions/{SUBSCRIPTION}/storageAccounts/{DEV_ACCOUNT}",
        }
        return _json({"blobReferenceForConsumption": reference})

    def _model(self, request: Request, parts: list[str]) -> Response:
        name = parts[1] if len(parts) > 1 else ""
        if len(parts) == 3 and parts[2] == "versions" and request.method == "GET":
            return _json({"value": self._listed(name, request)})
        if len(parts) == 4 and parts[2] == "versions":
            version = parts[3]
            stored = self.models.get((name, version))
            if request.method == "GET":
                if stored is None:
                    return _error(404, "UserError", f"model {name}:{version} not found")
                return _json(stored)
            if request.method == "PUT":
                stored = stored or self.raced.pop((name, version), None)
                if stored is not None:
                    self.models[(name, version)] = stored
                created = self._put_version(name, version, request.get_json(), stored)
                if self.form == "registry" and created.status_code < 300:
                    # A registry creates versions asynchronously: 202, and where to poll.
                    where = f"{self.url}{request.full_path}"
                    return Response(status=202, headers={"Location": where})
                return created
        return _error(405, "MethodNotAllowed", "not served by the fake")

    def _listed(self, name: str, request: Request) -> list[dict]:
        archived = request.args.get("listViewType", "ActiveOnly") != "ActiveOnly"
        return [
            resource
            for (model, _), resource in self.models.items()
            if model == name and (archived or not resource["properties"].get("isArchived"))
        ]

    def _put_version(self, name: str, version: str, body: dict, stored: dict | None) -> Response:
        properties = {k: v for k, v in body["properties"].items() if v is not None}
        if stored is not None:
            # Azure ML: a version's path never changes; a PUT with the same path only updates.
            if stored["properties"]["modelUri"] != properties.get("modelUri"):
                return _error(400, "UserError", "Asset paths cannot be updated.")
            stored["properties"].update(properties)
            return _json(stored)
        resource = {
            "id": self.version_id(name, version),
            "name": version,
            "type": f"Microsoft.MachineLearningServices/{self.form_plural}/models/versions",
            # What the service fills in: empty maps where the request had none.
            "properties": {
                "flavors": {},
                "tags": {},
                "properties": {},
                **properties,
                "isArchived": False,
                # A workspace's versions have a provisioning state; a registry's description none.
                **({"provisioningState": "Succeeded"} if self.form == "workspace" else {}),
            },
            "systemData": {"createdAt": "2026-11-30T00:00:00Z", "createdBy": "ci"},
        }
        self.models[(name, version)] = resource
        return _json(resource, status=201)

    @property
    def form_plural(self) -> str:
        return "registries" if self.form == "registry" else "workspaces"

    def version_id(self, name: str, version: str) -> str:
        """A workspace version's Resource Manager ID; a registry's is its asset ID."""
        if self.form == "registry":
            return f"azureml://registries/{REGISTRY}/models/{name}/versions/{version}"
        return f"{self.resource_id}/models/{name}/versions/{version}"

    def folder(self, name: str, version: str) -> str:
        """CONTAINER/FOLDER that holds a stored version's files."""
        uri = self.models[(name, version)]["properties"]["modelUri"].rstrip("/")
        if self.form == "workspace":
            return f"{self.container}/{uri.split('/paths/', 1)[1]}"
        return uri.removeprefix(self.data.blob_url + "/")

    def overwrite(self, name: str, version: str, file: str, data: bytes) -> None:
        """Replace a stored version's file behind the service's back."""
        container, _, folder = self.folder(name, version).partition("/")
        self.data.container(container).upload_blob(f"{folder}/{file}", data, overwrite=True)

    def blob_names(self) -> list[str]:
        """CONTAINER/BLOB of every blob this workspace or registry stores."""
        return [
            f"{container.name}/{blob}"
            for container in self.data.service().list_containers(name_starts_with=self.container)
            for blob in self.data.container(container.name).list_blob_names()
        ]


def _json(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, code: str, message: str, retry_after: str = "") -> Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"code": code, "message": message}}
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


@pytest.fixture(name="azureml", params=["workspace", "registry"])
def azureml_fixture(request, azureml_data_path, monkeypatch) -> Iterator[AzureMLFake]:
    """A fresh workspace or registry whose blobs go to a new container; its env set for this
    process. Every control-plane exchange of the test is held to Azure ML's REST descriptions
    after it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    azureml_data_path.ca.issue_cert(HOST).configure_cert(context)
    server = HTTPServer(host=HOST, port=0, ssl_context=context)
    server.start()
    try:
        container = f"azureml-blobstore-{uuid.uuid4().hex[:12]}"
        azureml_data_path.container(container).create_container()
        fake = AzureMLFake(server, azureml_data_path, container, form=request.param)
        fake.install()
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake
        _hold(server.log)
    finally:
        server.clear()
        server.stop()


def _hold(log) -> None:
    """Resource Manager's exchanges to its description, the registry front end's and discovery's
    to theirs; not the cloud metadata nor Entra ID's token."""
    arm, registry = Held("machinelearningservices"), Held("azureml-registry", REGISTRY_FRONT_END)
    for request, response in log:
        if request.path.startswith("/subscriptions/"):
            arm.observe(request, response)
        elif request.path.startswith((REGISTRY_FRONT_END, DISCOVERY)):
            registry.observe(request, response)
    assert arm.checked + registry.checked, "no control-plane exchange was held"
    assert arm.violations + registry.violations == [], arm.violations + registry.violations
