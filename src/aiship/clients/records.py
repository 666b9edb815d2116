"""Records about an image digest: OCI artifacts in the image's repository whose `subject` is it.

Everything the pipeline proves about an image (the staging pass, each deploy, ...) is one such
record: an OCI image manifest with `artifactType` application/vnd.aiship.<kind>.v1+json (or a
standard type: CycloneDX for an SBOM, in-toto for provenance), the
empty config, one layer holding the record's JSON, and the creation time as an annotation. The
registry lists a digest's records through the referrers API; registries without it (Debian's
docker-registry 2.8) get the referrers tag schema, an image index at tag sha256-<hex> that the
writing client maintains.

Written against opencontainers/distribution-spec spec.md at
967efdc079b91785ad18c77cc4f8991a47feefbf ("Pushing Manifests with Subject", "Listing Referrers",
"Unavailable Referrers API", "Referrers Tag Schema") and opencontainers/image-spec manifest.md at
13cff54902ec9ad6320cbc487a685b66fcd67171 (`artifactType`, `subject`, "Guidance for an Empty
Descriptor").
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ..support.errors import ConfigError, IntegrityError, NotFound, StepError
from .registry import (
    DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageRef,
    Manifest,
    RegistryClient,
    RegistryLogin,
    sha256_digest,
)

log = logging.getLogger(__name__)

KIND = re.compile(r"^[a-z0-9-]+$")
CREATED = "org.opencontainers.image.created"
# image-spec's empty descriptor: the config of an artifact that has none.
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
# How often a write re-adds its descriptor that a concurrent writer's index replaced.
TAG_ATTEMPTS = 5


@dataclass(frozen=True)
class Record:
    kind: str  # e.g. "staging-pass", "deploy"; [a-z0-9-]+
    subject: str  # the image manifest digest the record is about, sha256:...
    payload: dict  # the record's JSON document
    digest: str  # the record artifact's manifest digest
    created: str  # ISO 8601 UTC, from the manifest annotation org.opencontainers.image.created


EVALUATION = "evaluation"  # evaluate-model's verdict on the model in the image

# Kinds whose documents have a standard media type, so that other tools (oras discover, Ratify,
# an SBOM scanner) recognise them; every other kind is ours.
STANDARD_TYPES = {
    "sbom": "application/vnd.cyclonedx+json",
    "provenance": "application/vnd.in-toto+json",
}


@dataclass(frozen=True)
class Ledger:
    """The records about one image repository's digests, in its registry, and the tags that
    say which digest an environment runs."""

    client: RegistryClient
    repository: str

    @classmethod
    def of(cls, login: RegistryLogin, image: str) -> Ledger:
        return cls(RegistryClient(login), ImageRef.parse(image).repository)

    def read(self, digest: str, kind: str) -> list[Record]:
        return read_records(self.client, self.repository, digest, kind)

    def write(self, digest: str, kind: str, payload: dict) -> Record:
        return write_record(self.client, self.repository, digest, kind, payload)

    def runs(self, environment: str) -> str:
        """The digest ENVIRONMENT runs, as its deploys last recorded it; "" before the first."""
        try:
            return self.client.manifest(self.repository, deployed_tag(environment)).digest
        except NotFound:
            return ""

    def mark_running(self, environment: str, digest: str) -> None:
        """Point ENVIRONMENT's tag at DIGEST (the same manifest bytes, no layer moved)."""
        self.client.point_tag(self.repository, deployed_tag(environment), digest)


def deployed_tag(environment: str) -> str:
    """The tag that follows what ENVIRONMENT runs: deployed-<environment>."""
    if not KIND.match(environment):
        raise ConfigError(
            f"--environment {environment!r} cannot name the tag deployed-<environment>: use "
            "lowercase letters, digits and '-'"
        )
    return f"deployed-{environment}"


def artifact_type(kind: str) -> str:
    """The artifactType of records of `kind`: a standard one (STANDARD_TYPES), else
    application/vnd.aiship.<kind>.v1+json."""
    if not KIND.match(kind):
        raise ConfigError(f"record kind {kind!r} is not valid: use lowercase letters, digits, '-'")
    return STANDARD_TYPES.get(kind, f"application/vnd.aiship.{kind}.v1+json")


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag of a sha256 digest: sha256-<hex>."""
    return digest.replace(":", "-", 1)


def write_record(
    client: RegistryClient, repository: str, subject: str, kind: str, payload: dict
) -> Record:
    """Store `payload` as a record of `kind` about image `subject` (which must be in the
    repository), listed by the registry's referrers API or else by the referrers tag."""
    media_type = artifact_type(kind)
    _check_subject(subject)
    body = _canonical(payload, f"the {kind} record's payload")
    image = client.manifest(repository, subject)
    config = _descriptor(EMPTY_MEDIA_TYPE, client.push_blob(repository, EMPTY), EMPTY)
    layer = _descriptor(media_type, client.push_blob(repository, body), body)
    created = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": media_type,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": image.media_type, "digest": subject, "size": len(image.body)},
        "annotations": {CREATED: created},
    }
    manifest = _manifest(OCI_MANIFEST, document)
    response = client.push_manifest(repository, manifest.digest, manifest)
    said = response.headers.get("Docker-Content-Digest", manifest.digest)
    if said != manifest.digest:
        raise IntegrityError(
            f"registry {client.login.host} stored record {manifest.digest} of {repository} as "
            f"{said}: the registry or a proxy altered it"
        )
    # OCI-Subject says the registry processed the subject and lists the record itself.
    if response.headers.get("OCI-Subject") != subject:
        descriptor = _descriptor(OCI_MANIFEST, manifest.digest, manifest.body)
        descriptor |= {"artifactType": media_type, "annotations": document["annotations"]}
        _add_to_referrers_tag(client, repository, subject, descriptor)
    log.info("recorded %s about %s@%s: %s", kind, repository, subject, manifest.digest)
    return Record(kind, subject, json.loads(body), manifest.digest, created)


def read_records(client: RegistryClient, repository: str, subject: str, kind: str) -> list[Record]:
    """The records of `kind` about image `subject`, oldest first; [] when there are none. Each
    is checked: its manifest and payload against their digests, its subject against `subject`."""
    media_type = artifact_type(kind)
    _check_subject(subject)
    listed = client.referrers(repository, subject, media_type)
    if listed is None:  # no referrers API: the spec's fallback is the tag schema
        listed = _tag_index(client, repository, subject, strict=False)
    # Registries need not apply the artifactType filter (OCI-Filters-Applied says when they do).
    digests = dict.fromkeys(d.get("digest") for d in listed if d.get("artifactType") == media_type)
    records = [_read_record(client, repository, subject, kind, str(d)) for d in digests]
    return sorted(records, key=lambda record: (_instant(record), record.digest))


def _read_record(
    client: RegistryClient, repository: str, subject: str, kind: str, digest: str
) -> Record:
    name = f"record {digest} of {repository}"
    if not DIGEST.match(digest):
        raise IntegrityError(f"{name} is listed with an invalid digest: remove it from the list")
    document = client.manifest(repository, digest).json()
    said = (document.get("subject") or {}).get("digest")
    if said != subject:
        raise IntegrityError(
            f"{name} is listed among the records of {subject}, but its subject is {said}: "
            "the referrers list was altered; remove the entry"
        )
    media_type = artifact_type(kind)
    layers = document.get("layers") or []
    if document.get("artifactType") != media_type or [
        layer.get("mediaType") for layer in layers
    ] != [media_type]:
        raise IntegrityError(
            f"{name} is listed as {media_type} but is not one: the referrers list was altered; "
            "remove the entry"
        )
    data = client.blob(repository, str(layers[0].get("digest")))
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise IntegrityError(f"{name} is not a JSON object: delete it and write it again")
    created = str((document.get("annotations") or {}).get(CREATED, ""))
    record = Record(kind, subject, payload, digest, created)
    _instant(record)
    return record


def _add_to_referrers_tag(
    client: RegistryClient, repository: str, subject: str, descriptor: dict
) -> None:
    """Add `descriptor` to the image index at the subject's referrers tag (the spec's steps for
    a registry that did not answer OCI-Subject), re-adding it when a concurrent writer's index
    replaced ours. What remains: a writer that read the index before our PUT and puts its own
    after our read-back still drops our entry (the record stays in the registry, unlisted);
    registries without the referrers API offer no conditional PUT that would prevent it."""
    tag = referrers_tag(subject)
    listed = _tag_index(client, repository, subject, strict=True)
    for _ in range(TAG_ATTEMPTS):
        if any(d.get("digest") == descriptor["digest"] for d in listed):
            return
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*listed, descriptor]}
        client.push_manifest(repository, tag, _manifest(OCI_INDEX, index))
        listed = _tag_index(client, repository, subject, strict=True)  # read back
    if not any(d.get("digest") == descriptor["digest"] for d in listed):
        raise StepError(
            f"other writers replaced the referrers index {repository}:{tag} {TAG_ATTEMPTS} times, "
            f"dropping record {descriptor['digest']}: write the record again"
        )


def _tag_index(
    client: RegistryClient, repository: str, subject: str, *, strict: bool
) -> list[dict]:
    """The descriptors of the referrers tag's index; [] when the tag does not exist. A tag that
    holds something else fails a write (`strict`) and, as the spec says, means none to a read."""
    tag = referrers_tag(subject)
    try:
        manifest = client.manifest(repository, tag)
    except NotFound:
        return []
    document = manifest.json()
    if manifest.media_type == OCI_INDEX and document.get("mediaType", OCI_INDEX) == OCI_INDEX:
        return document.get("manifests") or []
    message = (
        f"tag {repository}:{tag} should hold the referrers index of {subject}, but holds a "
        f"{manifest.media_type}: delete the tag"
    )
    if strict:
        raise IntegrityError(message)
    log.warning("%s; reading it as no records", message)
    return []


def _instant(record: Record) -> datetime:
    """The record's creation time, for ordering; a record without one is not ours."""
    try:
        instant = datetime.fromisoformat(record.created)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise IntegrityError(
            f"record {record.digest} has no valid {CREATED} annotation ({record.created!r}): "
            "delete it and write it again"
        )
    return instant


def _check_subject(subject: str) -> None:
    if not DIGEST.match(subject):
        raise ConfigError(f"record subject {subject!r} is not an image digest (sha256:<64 hex>)")


def _canonical(document: dict, what: str) -> bytes:
    """Sorted keys, no spaces, UTF-8: equal documents are equal bytes, hence one blob."""
    if not isinstance(document, dict):
        raise ConfigError(f"{what} is a {type(document).__name__}, not a JSON object")
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{what} is not JSON ({error}): pass plain data") from None
    return text.encode()


def _manifest(media_type: str, document: dict) -> Manifest:
    body = _canonical(document, media_type)
    return Manifest(sha256_digest(body), media_type, body)


def _descriptor(media_type: str, digest: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": len(data)}
