"""A registry's HTTP API (OCI distribution) and its auth: anonymous, Basic, Bearer token challenge.

Credentials for registries other than ACR come from REGISTRY_USERNAME and REGISTRY_PASSWORD;
for ACR the password is a refresh token from the Entra ID token exchange (acr.py). Registries
on 127.0.0.1 or localhost are spoken to over http, all others over https. 429 and 5xx answers are
retried by urllib3's Retry on the session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
from requests.utils import parse_dict_header
from urllib3.util.retry import Retry

from ..support.errors import (
    AuthError,
    ConfigError,
    IntegrityError,
    NotFound,
    StepError,
    Unavailable,
)
from ..support.http import retrying_session
from ..support.logs import redact
from ..support.outputs import mask

log = logging.getLogger(__name__)

ENV_USERNAME = "REGISTRY_USERNAME"
ENV_PASSWORD = "REGISTRY_PASSWORD"  # noqa: S105  (the name of the variable, not a password)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
# Without these, distribution v2.8 answers a schema1 manifest whose digest differs from the pushed.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ImageRef:
    """REGISTRY/REPOSITORY[:TAG][@DIGEST]; REGISTRY is host[:port]."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, default_registry: str | None = None) -> ImageRef:
        rest, _, digest = text.partition("@")
        name, tag = rest, None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = rest.rsplit(":", 1)
        first, _, remainder = name.partition("/")
        if remainder and _names_host(first):
            registry, repository = first, remainder
        elif default_registry:
            registry, repository = default_registry, name
        else:
            raise ConfigError(
                f"--image {text}: name the registry too (REGISTRY/REPOSITORY:TAG), or give --acr"
            )
        if default_registry and registry != default_registry:
            raise ConfigError(
                f"--image {text} names registry {registry}, but --acr resolves to "
                f"{default_registry}: drop the registry from --image or fix --acr"
            )
        if (
            not repository
            or repository != repository.lower()
            or (digest and not DIGEST.match(digest))
        ):
            raise ConfigError(f"--image {text} is not a valid image reference (REPOSITORY:TAG)")
        return cls(registry, repository, tag or None, digest or None)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return (
            self.name
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


@dataclass(frozen=True)
class Credentials:
    """A login; `refresh_token` means the password is an OAuth2 refresh token (ACR)."""

    username: str
    password: str = field(repr=False)
    source: str = f"{ENV_USERNAME}/{ENV_PASSWORD}"
    refresh_token: bool = False


@dataclass(frozen=True)
class RegistryLogin:
    """Where to log in and how; the roles are named when the registry denies pull or push."""

    host: str
    credentials: Credentials | None = None
    pull_role: str = "pull access to the repository"
    push_role: str = "push access to the repository"

    @property
    def url(self) -> str:
        return registry_url(self.host)


@dataclass(frozen=True)
class Manifest:
    digest: str  # as the registry says it (Docker-Content-Digest), checked against the bytes
    media_type: str
    body: bytes = field(repr=False)

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def check_credentials_env(env: Mapping[str, str] | None = None) -> bool:
    """Whether REGISTRY_USERNAME and REGISTRY_PASSWORD are set: both or neither."""
    env = os.environ if env is None else env
    username, password = env.get(ENV_USERNAME, ""), env.get(ENV_PASSWORD, "")
    if bool(username) != bool(password):
        missing = ENV_PASSWORD if username else ENV_USERNAME
        raise ConfigError(f"{missing} is not set: set both {ENV_USERNAME} and {ENV_PASSWORD}")
    return bool(username)


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """REGISTRY_USERNAME and REGISTRY_PASSWORD, both or neither; the password is masked in CI."""
    env = os.environ if env is None else env
    if not check_credentials_env(env):
        return None
    mask(env[ENV_PASSWORD], env)
    return Credentials(env[ENV_USERNAME], env[ENV_PASSWORD])


def registry_of(image: str) -> str:
    """The registry IMAGE is pulled from, as docker reads it: its first part when that names a
    host, else Docker Hub."""
    first, _, rest = image.partition("/")
    return first if rest and _names_host(first) else "docker.io"


def _names_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


def registry_url(host: str) -> str:
    """http for a registry on this machine (127.0.0.1, localhost), https for any other."""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return f"{'http' if hostname in LOCAL_HOSTS else 'https'}://{host}"


def new_session(retries: int = 3, backoff: float = 0.3) -> requests.Session:
    """A session that retries connection errors, 429 and 5xx (honouring Retry-After)."""
    retry = Retry(
        total=retries,
        connect=2,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    return retrying_session(retry)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), {k: v or "" for k, v in parse_dict_header(params).items()}


class RegistryClient:
    """Reads manifests and blobs, answering the registry's auth challenge once per scope."""

    def __init__(
        self, login: RegistryLogin, *, session: requests.Session | None = None, timeout: float = 30
    ) -> None:
        self.login = login
        self.session = session or new_session()
        self.timeout = timeout
        self._authorization: dict[str, str] = {}  # scope -> Authorization header

    def challenge(self) -> tuple[str, dict[str, str]] | None:
        """The registry's answer to an anonymous GET /v2/: None when it asks for no login."""
        response = self._send("GET", "/v2/", {})
        if response.status_code != 401:
            return None
        return parse_challenge(response.headers.get("WWW-Authenticate", ""))

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest of a tag or digest, its bytes checked against Docker-Content-Digest."""
        path = f"/v2/{repository}/manifests/{reference}"
        name = reference_name(repository, reference)
        response = self.get(path, repository, headers={"Accept": MANIFEST_ACCEPT})
        if response.status_code == 404:
            raise NotFound(
                f"{self.login.host}/{name} does not exist in the registry: "
                "push it first, or check --image"
            )
        self._raise_for(response, repository)
        computed = sha256_digest(response.content)
        said = response.headers.get("Docker-Content-Digest", "")
        if said != computed or (reference.startswith("sha256:") and reference != computed):
            raise IntegrityError(
                f"the registry's manifest for {name} hashes to {computed}, "
                f"but it says {said or 'nothing'}: the registry or a proxy altered it"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(said, media_type or response.json().get("mediaType", ""), response.content)

    def blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes, checked against its digest (registries may redirect to storage)."""
        response = self.get(f"/v2/{repository}/blobs/{digest}", repository)
        if response.status_code == 404:
            raise NotFound(
                f"blob {digest} of {self.login.host}/{repository} is missing: push again"
            )
        self._raise_for(response, repository)
        if sha256_digest(response.content) != digest:
            raise IntegrityError(f"blob {digest} of {repository} does not match its digest")
        return response.content

    def image_configs(self, repository: str, manifest: Manifest) -> list[dict]:
        """The config of the image, or of each platform's image of an index (buildx's
        attestation manifests, which carry no image config worth checking, skipped)."""
        if not manifest.is_index:
            descriptor = manifest.json().get("config") or {}
            if not descriptor.get("digest"):
                raise IntegrityError(f"manifest {manifest.digest} of {repository} has no config")
            return [json.loads(self.blob(repository, descriptor["digest"]))]
        configs = []
        for child in manifest.json().get("manifests") or []:
            if (child.get("platform") or {}).get("os") == "unknown":
                continue
            configs += self.image_configs(repository, self.manifest(repository, child["digest"]))
        if not configs:
            raise IntegrityError(f"index {manifest.digest} of {repository} lists no image")
        return configs

    def layer_count(self, repository: str, manifest: Manifest) -> int:
        """The layers of the image, or of all platforms' images of an index."""
        if not manifest.is_index:
            return len(manifest.json().get("layers") or [])
        return sum(
            self.layer_count(repository, self.manifest(repository, child["digest"]))
            for child in manifest.json().get("manifests") or []
            if (child.get("platform") or {}).get("os") != "unknown"
        )

    def get(self, path: str, repository: str, headers: Mapping[str, str] | None = None):
        """GET with auth: Basic or a Bearer token for `repository:<name>:pull`, as challenged."""
        return self.call("GET", path, repository, "pull", headers)

    def put_manifest(self, repository: str, tag: str, manifest: Manifest) -> str:
        """Point `tag` at `manifest` (the same bytes, so the same digest); returns the digest."""
        response = self.push_manifest(repository, tag, manifest)
        return response.headers.get("Docker-Content-Digest", manifest.digest)

    def point_tag(self, repository: str, tag: str, digest: str) -> None:
        """Point TAG at the manifest DIGEST names (its own bytes: no layer moves); IntegrityError
        when the registry then names another digest for it."""
        moved = self.put_manifest(repository, tag, self.manifest(repository, digest))
        if moved != digest:
            raise IntegrityError(
                f"{self.login.host}/{repository}:{tag} now points at {moved}, not {digest}"
            )

    def push_manifest(
        self, repository: str, reference: str, manifest: Manifest
    ) -> requests.Response:
        """PUT `manifest` at a tag or its digest; the answer, for its headers (OCI-Subject)."""
        response = self.call(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            "pull,push",
            {"Content-Type": manifest.media_type},
            data=manifest.body,
        )
        if response.status_code in (401, 403):
            raise self._forbidden(response, "push", reference_name(repository, reference))
        self._raise_for(response, repository)
        return response

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the blob (HEAD), asked with the scope of a push."""
        response = self.call("HEAD", f"/v2/{repository}/blobs/{digest}", repository, "pull,push")
        if response.status_code == 404:
            return False
        self._raise_for_push(response, repository)
        return True

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload `data` monolithically (POST, then PUT to the upload URL) unless HEAD finds it
        there already; returns its digest."""
        digest = sha256_digest(data)
        if self.has_blob(repository, digest):
            return digest
        started = self.call("POST", f"/v2/{repository}/blobs/uploads/", repository, "pull,push")
        self._raise_for_push(started, repository)
        # The upload URL may be relative or absolute, and may carry query parameters of its own.
        location = urljoin(started.url, started.headers.get("Location", ""))
        headers = {"Content-Type": "application/octet-stream"}
        path = self._own_path(location)
        if path is None:  # offloaded to other storage: the URL authorises itself, no login sent
            response = self.request(
                "PUT", location, params={"digest": digest}, headers=headers, data=data
            )
        else:
            response = self.call(
                "PUT", path, repository, "pull,push", headers, params={"digest": digest}, data=data
            )
        self._raise_for_push(response, f"blob {digest} of {repository}")
        return digest

    def referrers(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[dict] | None:
        """The descriptors the referrers API lists for `digest`, every page (Link rel="next");
        None when the registry has no referrers API (it answers 404). A registry may ignore the
        `artifact_type` filter: callers filter too."""
        path: str | None = f"/v2/{repository}/referrers/{digest}"
        params = {"artifactType": artifact_type} if artifact_type else None
        descriptors: list[dict] = []
        first = True
        while path:
            response = self.call(
                "GET", path, repository, "pull", {"Accept": OCI_INDEX}, params=params
            )
            if first and response.status_code == 404:
                return None
            self._raise_for(response, f"the referrers of {repository}@{digest}")
            try:
                descriptors += response.json().get("manifests") or []
            except (ValueError, AttributeError):
                raise IntegrityError(
                    f"registry {self.login.host} listed the referrers of {repository}@{digest} "
                    "in something other than an image index: check the registry or its proxy"
                ) from None
            link = response.links.get("next", {}).get("url")
            path = link and self._own_path(urljoin(response.url, link))
            if link and path is None:
                raise IntegrityError(
                    f"registry {self.login.host} sent the next page of referrers to another "
                    f"host ({link}): check the registry or its proxy"
                )
            params, first = None, False  # the next page's URL carries its own query
        return descriptors

    def _own_path(self, url: str) -> str | None:
        """The path (and query) of `url` on this registry; None when it points elsewhere."""
        base = self.login.url + "/"
        return "/" + url.removeprefix(base) if url.startswith(base) else None

    def call(
        self,
        method: str,
        path: str,
        repository: str,
        actions: str,
        headers: Mapping[str, str] | None = None,
        **kwargs,
    ) -> requests.Response:
        """A request with auth: Basic or a Bearer token for `repository:<name>:<actions>`."""
        scope = f"repository:{repository}:{actions}"
        headers = dict(headers or {})
        if scope in self._authorization:
            headers["Authorization"] = self._authorization[scope]
        response = self._send(method, path, headers, **kwargs)
        if response.status_code != 401 or "Authorization" in headers:
            return response
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        credentials = self.login.credentials
        if scheme == "basic" and credentials:
            pair = f"{credentials.username}:{credentials.password}".encode()
            value = f"Basic {base64.b64encode(pair).decode()}"
        elif scheme == "bearer":
            value = f"Bearer {self._bearer_token(params, scope)}"
        else:
            return response
        self._authorization[scope] = headers["Authorization"] = value
        return self._send(method, path, headers, **kwargs)

    def _bearer_token(self, params: Mapping[str, str], scope: str) -> str:
        """A token from the challenge's realm: refresh-token grant (ACR), Basic, or anonymous."""
        realm, service = params.get("realm", ""), params.get("service", "")
        if not realm.startswith(("https://", "http://")):
            raise StepError(f"registry {self.login.host} sent no usable token realm ({realm!r})")
        credentials = self.login.credentials
        if credentials and credentials.refresh_token:
            form = {
                "grant_type": "refresh_token",
                "service": service,
                "scope": scope,
                "refresh_token": credentials.password,
            }
            response = self.request("POST", realm, data=form)
        else:
            auth = (credentials.username, credentials.password) if credentials else None
            response = self.request(
                "GET", realm, params={"service": service, "scope": scope}, auth=auth
            )
        if response.status_code in (401, 403):
            raise refused(self.login)
        self._raise_for(response, scope)
        body = response.json()
        token = body.get("access_token") or body.get("token")
        if not token:
            raise StepError(f"the token service of {self.login.host} answered without a token")
        mask(token)
        return token

    def _send(self, method: str, path: str, headers: Mapping[str, str], **kwargs):
        return self.request(method, self.login.url + path, headers=headers, **kwargs)

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        """Any request of this registry's auth flow; a connection failure names the registry."""
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.ConnectionError:
            raise Unavailable(
                f"registry {self.login.host} did not answer ({method} {url.split('?')[0]}): "
                "check that it runs and that --image names it"
            ) from None
        except requests.Timeout:
            raise Unavailable(
                f"registry {self.login.host} did not answer within "
                f"{self.timeout:g} s: try again later"
            ) from None

    def _forbidden(self, response: requests.Response, action: str, what: str) -> AuthError:
        """A refusal: the registry's firewall, or a login that lacks the role for `action`."""
        said = error_message(response)
        if firewalled(said):
            return AuthError(firewall_error(self.login.host, said))
        return denied(self.login, action, what)

    def _raise_for_push(self, response: requests.Response, what: str) -> None:
        """As _raise_for, but a refusal names the push role."""
        if response.status_code in (401, 403):
            raise self._forbidden(response, "push", what)
        self._raise_for(response, what)

    def _raise_for(self, response: requests.Response, what: str) -> None:
        if response.ok:
            return
        status = response.status_code
        if status == 401:
            _, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if params.get("error") == "insufficient_scope" or not self.login.credentials:
                raise denied(self.login, "pull", what)
            raise refused(self.login)
        if status == 403:
            raise self._forbidden(response, "pull", what)
        if status == 429 or status >= 500:
            raise Unavailable(
                f"registry {self.login.host} answered {status} for {what} after retries: "
                "try again later"
            )
        raise StepError(
            f"registry {self.login.host} answered {status} for {what}: {error_code(response)}"
        )


def refused(login: RegistryLogin) -> AuthError:
    """The registry wants a login it did not get, or refused the one it got."""
    if login.credentials is None:
        return AuthError(
            f"registry {login.host} requires a login: set {ENV_USERNAME} and {ENV_PASSWORD} "
            "(or give --acr for an Azure Container Registry)"
        )
    return AuthError(
        f"registry {login.host} refused the credentials ({login.credentials.source}): check them"
    )


def denied(login: RegistryLogin, action: str, what: str) -> AuthError:
    """The login is good but may not `action` ("pull" or "push") `what`."""
    if login.credentials is None:
        return refused(login)
    role = login.push_role if action == "push" else login.pull_role
    return AuthError(f"registry {login.host} denied {action} of {what}: the login needs {role}")


def reference_name(repository: str, reference: str) -> str:
    """REPOSITORY@DIGEST or REPOSITORY:TAG."""
    return f"{repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error_message(response: requests.Response) -> str:
    """The first OCI error's message (or code) of an answer, one line, redacted; else its reason."""
    try:
        first = (response.json().get("errors") or [{}])[0]
        text = str(first.get("message") or first.get("code") or response.reason)
    except (ValueError, AttributeError, IndexError):
        text = response.text.strip() or str(response.reason)
    return redact(" ".join(text.split()))[:300]


def firewalled(text: str) -> bool:
    """ACR's firewall answers 403 "client with IP '...' is not allowed access"."""
    return "is not allowed access" in text


def firewall_error(registry: str, said: str) -> str:
    return (
        f"registry {registry} refuses this machine's network address ({said}): allow the "
        "runner's IP or network in the registry's networking rules, or use an agent inside it"
    )


def error_code(response: requests.Response) -> str:
    """The first OCI error code of an error answer, e.g. MANIFEST_UNKNOWN."""
    try:
        errors = response.json().get("errors") or [{}]
        return str(errors[0].get("code") or response.reason)
    except (ValueError, AttributeError):
        return str(response.reason)
