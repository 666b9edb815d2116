"""Records about an image digest: the real docker-registry 2.8 (no referrers API, so the
referrers tag schema), the ACR stand-in's token auth, and a fake of a registry that serves the
referrers API (no registry here does)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import requests
from werkzeug import Request, Response

from aiship.clients.records import (
    EMPTY_MEDIA_TYPE,
    artifact_type,
    read_records,
    referrers_tag,
    write_record,
)
from aiship.clients.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Credentials,
    Manifest,
    RegistryClient,
    RegistryLogin,
    new_session,
)
from aiship.support.errors import AuthError, ConfigError, IntegrityError
from tests.registries import PASSWORD, USER, put_image

REPO = "aiship/app"
STAGING = "staging-pass"
# image-spec manifest.md, "Guidance for an Empty Descriptor": the digest of `{}`.
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def recording_client(host: str, credentials: Credentials | None = None):
    """A client on a real session whose every answered request is noted as (method, path)."""
    session = new_session(backoff=0)
    calls: list[tuple[str, str]] = []
    session.hooks["response"].append(
        lambda response, *args, **kwargs: calls.append(
            (response.request.method, requests.utils.urlparse(response.request.url).path)
        )
    )
    return RegistryClient(RegistryLogin(host, credentials), session=session), calls


@pytest.fixture
def image(registry) -> str:
    return put_image(registry, REPO, "v1", {"app": "1"})


@pytest.fixture
def client(registry) -> RegistryClient:
    return RegistryClient(RegistryLogin(registry.host))


def index_at_tag(registry, subject: str) -> requests.Response:
    return requests.get(
        f"{registry.url}/v2/{REPO}/manifests/{referrers_tag(subject)}",
        headers={"Accept": OCI_INDEX},
        timeout=10,
    )


def put_index(client: RegistryClient, subject: str, descriptors: list[dict]) -> None:
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    ).encode()
    client.put_manifest(REPO, referrers_tag(subject), Manifest(sha256(body), OCI_INDEX, body))


# --- on docker-registry 2.8: the referrers tag schema ------------------------------------------


def test_a_record_round_trips_as_an_oci_artifact(registry, client, image):
    written = write_record(client, REPO, image, STAGING, {"smoke": "passed", "pods": 2})
    [read] = read_records(client, REPO, image, STAGING)

    assert read == written
    assert read.payload == {"smoke": "passed", "pods": 2}
    assert (read.kind, read.subject) == (STAGING, image)
    assert datetime.fromisoformat(read.created).utcoffset().total_seconds() == 0
    assert read.created.endswith("Z")
    # The artifact itself, as image-spec's manifest.md describes one.
    subject = client.manifest(REPO, image)
    artifact = client.manifest(REPO, read.digest)
    document = artifact.json()
    assert artifact.media_type == OCI_MANIFEST
    assert document["artifactType"] == artifact_type(STAGING)
    assert artifact_type(STAGING) == "application/vnd.aiship.staging-pass.v1+json"
    assert document["config"] == {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": 2}
    assert [layer["mediaType"] for layer in document["layers"]] == [artifact_type(STAGING)]
    assert document["subject"] == {
        "mediaType": subject.media_type,
        "digest": image,
        "size": len(subject.body),
    }
    assert document["annotations"] == {"org.opencontainers.image.created": read.created}


def test_without_a_referrers_api_the_tag_schema_lists_the_record(registry, client, image):
    referrers = requests.get(f"{registry.url}/v2/{REPO}/referrers/{image}", timeout=10)
    assert referrers.status_code == 404  # docker-registry 2.8 has no referrers API
    assert index_at_tag(registry, image).status_code == 404

    record = write_record(client, REPO, image, STAGING, {"ok": True})

    tag = "sha256-" + image.removeprefix("sha256:")
    tags = requests.get(f"{registry.url}/v2/{REPO}/tags/list", timeout=10).json()["tags"]
    assert tag in tags
    answer = index_at_tag(registry, image)
    assert answer.headers["Content-Type"] == OCI_INDEX
    manifest = client.manifest(REPO, record.digest)
    assert answer.json()["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": record.digest,
            "size": len(manifest.body),
            "artifactType": artifact_type(STAGING),
            "annotations": {"org.opencontainers.image.created": record.created},
        }
    ]


def test_records_of_a_kind_are_kept_oldest_first_and_blobs_uploaded_once(registry, image):
    client, calls = recording_client(registry.host)
    written = [write_record(client, REPO, image, STAGING, {"n": n}) for n in (1, 2)]
    calls.clear()
    written.append(write_record(client, REPO, image, STAGING, {"n": 1}))

    # The same payload again is a record of its own, but its blobs are there: no upload.
    assert [method for method, _ in calls].count("POST") == 0
    assert ("PUT", f"/v2/{REPO}/manifests/{written[-1].digest}") in calls  # by digest
    records = read_records(client, REPO, image, STAGING)
    assert records == written
    assert [record.payload["n"] for record in records] == [1, 2, 1]
    assert len({record.digest for record in records}) == 3
    instants = [datetime.fromisoformat(record.created) for record in records]
    assert instants == sorted(instants)


def test_other_kinds_and_other_images_are_not_returned(registry, client, image):
    other = put_image(registry, REPO, "v2", {"app": "2"}, content=b"other\n")
    mine = write_record(client, REPO, image, STAGING, {"image": "mine"})
    write_record(client, REPO, image, "deploy", {"to": "staging"})
    write_record(client, REPO, other, STAGING, {"image": "other"})

    assert read_records(client, REPO, image, STAGING) == [mine]
    assert [r.payload for r in read_records(client, REPO, other, STAGING)] == [{"image": "other"}]
    assert read_records(client, REPO, other, "deploy") == []


def test_a_digest_without_records_has_none(registry, client, image):
    assert read_records(client, REPO, image, STAGING) == []
    assert read_records(client, REPO, "sha256:" + "0" * 64, STAGING) == []


def test_a_concurrent_writers_index_replacing_ours_is_repaired(registry, image):
    """Another writer read the index before our PUT and puts its own right after it: the
    read-back misses our record, so it is added again; both records stay listed."""
    client = RegistryClient(RegistryLogin(registry.host))
    first = write_record(client, REPO, image, STAGING, {"n": 1})
    before = index_at_tag(registry, image).json()["manifests"]
    theirs = write_record(client, REPO, image, STAGING, {"n": 2})
    their_index = index_at_tag(registry, image).content
    put_index(client, image, before)  # as it was when the other writer read it

    tag_path = f"/v2/{REPO}/manifests/{referrers_tag(image)}"
    our_puts = []

    def other_writer(response, *args, **kwargs):
        if response.request.method == "PUT" and response.request.url.endswith(tag_path):
            our_puts.append(response.status_code)
            if len(our_puts) == 1:
                requests.put(
                    registry.url + tag_path,
                    data=their_index,
                    headers={"Content-Type": OCI_INDEX},
                    timeout=10,
                ).raise_for_status()

    racing, _ = recording_client(registry.host)
    racing.session.hooks["response"].append(other_writer)
    ours = write_record(racing, REPO, image, STAGING, {"n": 3})

    assert our_puts == [201, 201]
    assert read_records(client, REPO, image, STAGING) == [first, theirs, ours]


def test_a_swapped_record_blob_is_refused(registry, client, image):
    record = write_record(client, REPO, image, STAGING, {"n": 1})
    payload_digest = sha256(b'{"n":1}')
    hex_ = payload_digest.removeprefix("sha256:")
    data = registry.storage / f"docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"
    assert read_records(client, REPO, image, STAGING) == [record]
    data.write_bytes(b'{"n":2}')  # the same size, other bytes

    with pytest.raises(IntegrityError, match=f"blob {payload_digest} of {REPO} does not match"):
        read_records(client, REPO, image, STAGING)


def test_a_record_of_another_image_listed_for_this_one_is_refused(registry, client, image):
    other = put_image(registry, REPO, "v2", {"app": "2"}, content=b"other\n")
    write_record(client, REPO, other, STAGING, {"image": "other"})
    borrowed = index_at_tag(registry, other).json()["manifests"]
    put_index(client, image, borrowed)  # the index of `image` altered to list it

    with pytest.raises(IntegrityError, match=f"but its subject is {other}"):
        read_records(client, REPO, image, STAGING)


def test_a_record_that_is_not_json_is_refused(registry, client, image):
    """A well-formed artifact whose layer is not JSON, listed like a record."""
    broken = b"not json {"
    subject = client.manifest(REPO, image)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type(STAGING),
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": client.push_blob(REPO, b"{}"),
            "size": 2,
        },
        "layers": [
            {
                "mediaType": artifact_type(STAGING),
                "digest": client.push_blob(REPO, broken),
                "size": len(broken),
            }
        ],
        "subject": {"mediaType": subject.media_type, "digest": image, "size": len(subject.body)},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    body = json.dumps(document).encode()
    manifest = Manifest(sha256(body), OCI_MANIFEST, body)
    client.push_manifest(REPO, manifest.digest, manifest)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": manifest.digest,
        "size": len(body),
        "artifactType": artifact_type(STAGING),
    }
    put_index(client, image, [descriptor])

    with pytest.raises(IntegrityError, match=f"record {manifest.digest} of {REPO} is not a JSON"):
        read_records(client, REPO, image, STAGING)


def test_a_referrers_tag_holding_no_index(registry, client, image):
    """The spec: a write reports the failure; a read takes it as no referrers."""
    put_image(registry, REPO, referrers_tag(image), {"not": "an index"})

    assert read_records(client, REPO, image, STAGING) == []
    with pytest.raises(IntegrityError, match=f"tag {REPO}:{referrers_tag(image)} should hold"):
        write_record(client, REPO, image, STAGING, {"n": 1})


def test_bad_kinds_subjects_and_payloads_are_refused_first(registry, client, image):
    with pytest.raises(ConfigError, match="record kind 'Staging_Pass' is not valid"):
        write_record(client, REPO, image, "Staging_Pass", {})
    with pytest.raises(ConfigError, match="record subject 'v1' is not an image digest"):
        read_records(client, REPO, "v1", STAGING)
    with pytest.raises(ConfigError, match="payload is not JSON"):
        write_record(client, REPO, image, STAGING, {"when": datetime.now(UTC)})
    assert index_at_tag(registry, image).status_code == 404


def test_a_login_is_needed_on_a_registry_with_auth(auth_registry):
    image = put_image(auth_registry, REPO, "v1", {"app": "1"}, auth=(USER, PASSWORD))
    anonymous = RegistryClient(RegistryLogin(auth_registry.host))
    needs_login = (
        f"registry {auth_registry.host} requires a login: "
        "set REGISTRY_USERNAME and REGISTRY_PASSWORD"
    )
    with pytest.raises(AuthError, match=re.escape(needs_login)):
        write_record(anonymous, REPO, image, STAGING, {"n": 1})
    with pytest.raises(AuthError, match=re.escape(needs_login)):
        read_records(anonymous, REPO, image, STAGING)

    logged_in = RegistryClient(RegistryLogin(auth_registry.host, Credentials(USER, PASSWORD)))
    record = write_record(logged_in, REPO, image, STAGING, {"n": 1})
    assert read_records(logged_in, REPO, image, STAGING) == [record]


def test_writing_needs_the_push_role_on_acr(acr):
    """Bearer tokens for `repository:aiship/app:pull,push`, granted as the role allows."""
    image = put_image(
        acr.registry,
        REPO,
        "v1",
        {"app": "1"},
        bearer=acr.tokens.mint([f"repository:{REPO}:pull,push"]),
    )
    refresh = f"acr-refresh-{uuid.uuid4().hex}"
    acr.tokens.refresh_tokens.add(refresh)
    login = RegistryLogin(
        acr.login_server,
        Credentials("00000000-0000-0000-0000-000000000000", refresh, refresh_token=True),
        push_role="the AcrPush role on aishipacr",
    )
    record = write_record(RegistryClient(login), REPO, image, STAGING, {"n": 1})

    acr.tokens.role = "AcrPull"
    reader = RegistryClient(login)
    assert read_records(reader, REPO, image, STAGING) == [record]
    with pytest.raises(AuthError, match=f"denied push of {REPO}: the login needs the AcrPush"):
        write_record(reader, REPO, image, STAGING, {"n": 2})


# --- a registry with the referrers API ---------------------------------------------------------

ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?P<area>blobs/uploads|blobs|manifests|referrers)/(?P<ref>[^/]*)$"
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class ReferrersRegistry:
    """A registry with distribution-spec 1.1's referrers API, as spec.md (opencontainers/
    distribution-spec at 967efdc079b91785ad18c77cc4f8991a47feefbf) says:

    - "Pushing Manifests with Subject": a manifest PUT with a `subject` is answered with
      `OCI-Subject: <subject digest>`, and the registry lists the manifest itself.
    - "Listing Referrers": GET /v2/<name>/referrers/<digest> answers 200, never 404, with an
      OCI image index (Content-Type application/vnd.oci.image.index.v1+json) of descriptors of
      the manifests in <name> whose subject is <digest>: `artifactType` from the manifest (or its
      config's mediaType), the manifest's annotations; an empty index when there are none; 400
      for an invalid digest; a `Link: <...>; rel="next"` header when the list does not fit one
      page (`page_size`); with `?artifactType=` and `filters` on, only that type and the header
      `OCI-Filters-Applied: artifactType` (filtering is a SHOULD: `filters` off ignores it).
    - "Pull" and "Push": blobs (HEAD, GET, monolithic POST then PUT ?digest=, checked) and
      manifests (GET, HEAD, PUT by tag or digest). No auth.
    """

    filters: bool = True
    page_size: int = 2
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)

    def handle(self, request: Request) -> Response:
        if request.path == "/v2/":
            return Response("{}", content_type="application/json")
        route = ROUTE.match(request.path)
        if not route:
            return error(404, "NAME_UNKNOWN")
        name, area, ref = route.group("name", "area", "ref")
        handlers = {
            "blobs/uploads": self.upload,
            "blobs": self.blob,
            "manifests": self.put_manifest if request.method == "PUT" else self.manifest,
            "referrers": self.referrers,
        }
        return handlers[area](request, name, ref)

    def upload(self, request: Request, name: str, ref: str) -> Response:
        if request.method == "POST" and not ref:
            location = f"/v2/{name}/blobs/uploads/{uuid.uuid4()}"
            return Response(status=202, headers={"Location": location})
        digest = request.args.get("digest", "")
        if request.method != "PUT" or sha256(request.get_data()) != digest:
            return error(400, "DIGEST_INVALID")
        self.blobs[name, digest] = request.get_data()
        return Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}"})

    def blob(self, request: Request, name: str, digest: str) -> Response:
        data = self.blobs.get((name, digest))
        if data is None:
            return error(404, "BLOB_UNKNOWN")
        # werkzeug answers a HEAD with the GET's headers (Content-Length too), without the body.
        return Response(data, headers={"Docker-Content-Digest": digest})

    def manifest(self, request: Request, name: str, ref: str) -> Response:
        digest = self.tags.get((name, ref), ref)
        if (name, digest) not in self.manifests:
            return error(404, "MANIFEST_UNKNOWN")
        media_type, body = self.manifests[name, digest]
        return Response(body, content_type=media_type, headers={"Docker-Content-Digest": digest})

    def put_manifest(self, request: Request, name: str, ref: str) -> Response:
        body = request.get_data()
        digest = sha256(body)
        if DIGEST.match(ref) and ref != digest:
            return error(400, "DIGEST_INVALID")
        self.manifests[name, digest] = (request.content_type, body)
        if not DIGEST.match(ref):
            self.tags[name, ref] = digest
        headers = {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"}
        subject = (json.loads(body).get("subject") or {}).get("digest")
        if subject:
            headers["OCI-Subject"] = subject
        return Response(status=201, headers=headers)

    def referrers(self, request: Request, name: str, digest: str) -> Response:
        if not DIGEST.match(digest):
            return error(400, "DIGEST_INVALID")
        wanted = request.args.get("artifactType") if self.filters else None
        listed = [
            d for d in self.referrers_of(name, digest) if not wanted or d["artifactType"] == wanted
        ]
        page = int(request.args.get("page", "1"))
        shown = listed[(page - 1) * self.page_size : page * self.page_size]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": shown}
        headers = {"OCI-Filters-Applied": "artifactType"} if wanted else {}
        if page * self.page_size < len(listed):
            query = urlencode({**({"artifactType": wanted} if wanted else {}), "page": page + 1})
            headers["Link"] = f'</v2/{name}/referrers/{digest}?{query}>; rel="next"'
        return Response(json.dumps(index), content_type=OCI_INDEX, headers=headers)

    def referrers_of(self, name: str, digest: str) -> list[dict]:
        found = []
        for (repository, manifest_digest), (media_type, body) in self.manifests.items():
            document = json.loads(body)
            if repository != name or (document.get("subject") or {}).get("digest") != digest:
                continue
            descriptor = {
                "mediaType": media_type,
                "digest": manifest_digest,
                "size": len(body),
                "artifactType": document.get("artifactType")
                or document.get("config", {}).get("mediaType"),
            }
            if document.get("annotations"):
                descriptor["annotations"] = document["annotations"]
            found.append(descriptor)
        return found


def error(status: int, code: str) -> Response:
    body = {"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}
    return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture
def api_registry(httpserver):
    fake = ReferrersRegistry()
    httpserver.expect_request(re.compile("^/v2/.*")).respond_with_handler(fake.handle)
    config = b'{"architecture":"amd64","os":"linux"}'
    fake.blobs[REPO, sha256(config)] = config
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    fake.manifests[REPO, sha256(body)] = (OCI_MANIFEST, body)
    fake.tags[REPO, "v1"] = sha256(body)
    return fake, f"127.0.0.1:{httpserver.port}", sha256(body)


def test_the_referrers_api_lists_records_and_no_tag_is_written(api_registry, httpserver):
    fake, host, image = api_registry
    client, calls = recording_client(host)
    written = [write_record(client, REPO, image, STAGING, {"n": n}) for n in (1, 2, 3)]
    write_record(client, REPO, image, "deploy", {"to": "staging"})

    records = read_records(client, REPO, image, STAGING)

    assert records == written
    assert (REPO, referrers_tag(image)) not in fake.tags
    assert not any(path.endswith(referrers_tag(image)) for _, path in calls)
    asked = [
        (request.args.get("artifactType"), response.headers.get("OCI-Filters-Applied"))
        for request, response in httpserver.log
        if request.path == f"/v2/{REPO}/referrers/{image}"
    ]
    # Three records, two a page: the Link header's next page was followed, filter and all.
    assert asked == [(artifact_type(STAGING), "artifactType")] * 2


def test_an_unfiltered_referrers_list_is_filtered_here(api_registry, httpserver):
    fake, host, image = api_registry
    fake.filters, fake.page_size = False, 10
    client = RegistryClient(RegistryLogin(host))
    record = write_record(client, REPO, image, STAGING, {"n": 1})
    write_record(client, REPO, image, "deploy", {"to": "staging"})

    assert read_records(client, REPO, image, STAGING) == [record]
    [(_, answer)] = [exchange for exchange in httpserver.log if "/referrers/" in exchange[0].path]
    assert "OCI-Filters-Applied" not in answer.headers
    assert len(answer.json["manifests"]) == 2  # the registry listed the deploy record too
