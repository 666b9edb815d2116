"""`attest-image` and `verify-image`: what an image is, proven in CI, checked before a release.

CI, after verify-push and before promote-image: `attest-image` reads the image back from the
registry and writes two records about its digest (clients/records.py): a CycloneDX SBOM read
from the image's own layers, the model among its components (clients/sbom.py), and an in-toto
statement of SLSA provenance (repository, revision, model, CI run, builder). It then signs the
image and both records with Notation: a local key, or a key in Azure Key Vault through its plugin.

The release, before the approval gate: `verify-image` refuses, in one line naming what is wrong,
an image that is not signed by the trusted identity, an SBOM or a provenance that is missing,
unsigned, or names another model or revision than the image's labels, and a revision that is not
on main (exit 9).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..support.errors import ConfigError, Unproven
from ..support.files import write_private
from ..support.git import git_revision
from ..support.labels import (
    BASE_DIGEST,
    BASE_NAME,
    LABEL_MODEL_NAME,
    LABEL_MODEL_SHA256,
    LABEL_MODEL_VERSION,
    LABEL_REVISION,
    LABEL_SOURCE,
)
from ..support.paths import project_dir
from .command import REGISTRY_ENVIRONMENT, Command, RegistryImage, pinned_image, registry_flags

if TYPE_CHECKING:
    from ..clients.notation import Notation
    from ..clients.records import Record
    from ..clients.registry import ImageRef, RegistryClient, RegistryLogin

log = logging.getLogger(__name__)

SBOM = "sbom"
PROVENANCE = "provenance"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:aiship:build-image:v1"  # our build: app + model in one image (build_image.py)
MAIN_REFS = ("origin/main", "main")


@dataclass(frozen=True)
class Signer:
    """A Notation key: a local one by name, or a Key Vault key id through a plugin."""

    key: str | None = None
    key_id: str | None = None
    plugin: str | None = None
    plugin_config: tuple[tuple[str, str], ...] = ()  # e.g. (("self_signed", "true"),)
    # In a GitHub job federated with Azure: where a fresh OIDC assertion is written before each
    # signature, for the Key Vault plugin's workload identity credential.
    federated_token: Path | None = None

    def sign(self, notation: Notation, reference: str) -> str:
        environment = {}
        if self.federated_token:
            from ..clients.azure import github_assertion

            write_private(self.federated_token, github_assertion(os.environ).encode())
            environment["AZURE_FEDERATED_TOKEN_FILE"] = str(self.federated_token)
        try:
            return notation.sign(
                reference,
                key=self.key,
                key_id=self.key_id,
                plugin=self.plugin,
                plugin_config=dict(self.plugin_config),
                environment=environment,
            )
        finally:  # the assertion is a credential for minutes: not left behind for longer
            if self.federated_token:
                self.federated_token.unlink(missing_ok=True)


def federated_signer(signer: Signer, notation_home: Path, env: Mapping[str, str]) -> Signer:
    """SIGNER, signing in through the GitHub job's own OIDC assertions where the job has them.
    Notation's Azure Key Vault plugin signs in through the Azure CLI by default, whose
    federated login cannot be refreshed once the job's first assertion expired (minutes after
    azure/login): the plugin's `workloadid` credential reads a token file instead, written
    fresh before each signature. A credential_type given in --plugin-config wins."""
    from ..clients.azure import github_federation

    configured = dict(signer.plugin_config)
    if signer.plugin != "azure-kv" or "credential_type" in configured or not github_federation(env):
        return signer
    return replace(
        signer,
        plugin_config=(*signer.plugin_config, ("credential_type", "workloadid")),
        federated_token=notation_home / "github-oidc-token",
    )


@dataclass(frozen=True)
class Attestation:
    image: str  # REPOSITORY@sha256:...
    sbom: str  # the SBOM record's digest
    provenance: str  # the provenance record's digest
    signatures: tuple[str, ...]  # the image's, the SBOM's and the provenance's
    bytes_pushed: int  # the two documents (their manifests and signatures aside)
    seconds: float

    def outputs(self) -> dict[str, object]:
        return {
            "image": self.image,
            "digest": self.image.rsplit("@", 1)[1],
            "sbom": self.sbom,
            "provenance": self.provenance,
            "signatures": list(self.signatures),
            "bytes_pushed": self.bytes_pushed,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Verification:
    image: str
    checks: tuple[str, ...]  # one line per thing verified
    skipped: tuple[str, ...] = ()  # one line per newer record that did not verify

    def outputs(self) -> dict[str, object]:
        return {
            "image": self.image,
            "digest": self.image.rsplit("@", 1)[1],
            "verified": list(self.checks),
            "skipped": list(self.skipped),
        }


def image_labels(client: RegistryClient, image: ImageRef) -> dict[str, str]:
    manifest = client.manifest(image.repository, image.digest)
    config = client.image_configs(image.repository, manifest)[0]
    return dict((config.get("config") or {}).get("Labels") or {})


def provenance_statement(
    image: ImageRef, labels: Mapping[str, str], run: Mapping[str, str], started: str
) -> dict:
    """An in-toto Statement v1 of SLSA provenance v1 about IMAGE (by digest), from what the
    build recorded in its labels (checked against the CI run first: check_revision) and the CI
    run that attests it."""
    from ..clients.sbom import oci_purl

    revision = labels.get(LABEL_REVISION, "")
    source = labels.get(LABEL_SOURCE, "unknown")
    dependencies = [
        {"uri": f"git+{source}", "digest": {"gitCommit": revision}},
        {
            "uri": f"model:{labels.get(LABEL_MODEL_NAME, '')}"
            f"@{labels.get(LABEL_MODEL_VERSION, '')}",
            "digest": {"sha256": labels.get(LABEL_MODEL_SHA256, "")},
        },
    ]
    base, digest = labels.get(BASE_NAME, ""), labels.get(BASE_DIGEST, "unknown")
    if base and digest != "unknown":  # a Dockerfile built by hand records no base
        dependencies.append(
            {
                "name": "base-image",
                "uri": oci_purl(base, digest),
                "digest": {"sha256": digest.removeprefix("sha256:")},
            }
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": image.name, "digest": {"sha256": image.digest.split(":", 1)[1]}}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "repository": source,
                    "revision": revision,
                    "model": {
                        "name": labels.get(LABEL_MODEL_NAME, ""),
                        "version": labels.get(LABEL_MODEL_VERSION, ""),
                        "sha256": labels.get(LABEL_MODEL_SHA256, ""),
                    },
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": run.get("url") or f"{run.get('system', 'local')}:aiship"},
                "metadata": {
                    "invocationId": run.get("url") or run.get("id", ""),
                    "startedOn": started,
                },
            },
        },
    }


def check_revision(image: ImageRef, labels: Mapping[str, str], revision: str) -> None:
    """Unproven unless IMAGE is labelled with REVISION, the commit this CI run builds: the
    provenance must say what the CI system ran, not merely repeat the label."""
    labelled = labels.get(LABEL_REVISION) or "no revision"
    if labelled != revision:
        raise Unproven(
            f"{image.name}@{image.digest} is labelled {labelled}, but this run builds {revision}: "
            "attest the image this run built (build-image, push-image and attest-image in one job)"
        )


def attest_image(
    login: RegistryLogin, image: ImageRef, notation: Notation, signer: Signer, *, revision: str
) -> Attestation:
    """IMAGE's SBOM and provenance as records about its digest, and all three signed; refused
    unless IMAGE was built from REVISION (the CI system's commit: git_revision)."""
    from datetime import UTC, datetime

    from ..clients.records import write_record
    from ..clients.registry import RegistryClient
    from ..clients.sbom import image_sbom, validate_sbom
    from ..support.git import ci_run

    started = time.monotonic()
    began = datetime.now(UTC).isoformat(timespec="seconds")
    client = RegistryClient(login)
    labels = image_labels(client, image)
    check_revision(image, labels, revision)
    sbom = image_sbom(client, image.repository, image.digest, name=image.name)
    validate_sbom(sbom)
    statement = provenance_statement(image, labels, ci_run(), began)
    records = [
        write_record(client, image.repository, image.digest, kind, document)
        for kind, document in ((SBOM, sbom), (PROVENANCE, statement))
    ]
    signatures = tuple(
        signer.sign(notation, f"{image.name}@{digest}")
        for digest in (image.digest, *(r.digest for r in records))
    )
    pushed = sum(len(json.dumps(r.payload, separators=(",", ":"))) for r in records)
    log.info(
        "signed %s, its SBOM (%d components) and its provenance",
        image,
        len(sbom.get("components", [])),
    )
    return Attestation(
        f"{image.name}@{image.digest}",
        records[0].digest,
        records[1].digest,
        signatures,
        pushed,
        round(time.monotonic() - started, 1),
    )


def verify_image(
    login: RegistryLogin, image: ImageRef, notation: Notation, root: Path | None = None
) -> Verification:
    """Everything attest-image proved about IMAGE, checked again: Unproven at the first gap.
    The revision must be on main in ROOT's history (the project's: project_dir())."""
    from ..clients.registry import RegistryClient
    from ..clients.sbom import sbom_model, validate_sbom
    from ..support.git import on_branch

    client = RegistryClient(login)
    labels = image_labels(client, image)
    reference = f"{image.name}@{image.digest}"
    checks = [f"image signed: {_verified(notation, reference, 'the image')}"]

    sbom, skipped = _signed_record(client, notation, image, SBOM)
    validate_sbom(sbom.payload)
    name, version, sha256 = sbom_model(sbom.payload)
    if sha256 != labels.get(LABEL_MODEL_SHA256):
        raise Unproven(
            f"the SBOM of {reference} names model sha256 {sha256}, but the image's label says "
            f"{labels.get(LABEL_MODEL_SHA256) or 'nothing'}: attest the image again in CI"
        )
    checks.append(f"SBOM signed, model {name} {version} sha256 {sha256[:12]} as labelled")

    record, skipped_provenance = _signed_record(client, notation, image, PROVENANCE)
    provenance = record.payload
    subjects = [s.get("digest", {}).get("sha256") for s in provenance.get("subject", [])]
    revision = (
        provenance.get("predicate", {})
        .get("buildDefinition", {})
        .get("externalParameters", {})
        .get("revision", "")
    )
    if image.digest.split(":", 1)[1] not in subjects:
        raise Unproven(
            f"the provenance of {reference} is about another image ({', '.join(map(str, subjects))}"
            "): attest the image again in CI"
        )
    if revision != labels.get(LABEL_REVISION):
        raise Unproven(
            f"the provenance of {reference} names revision {revision or 'none'}, but the image "
            f"was built from {labels.get(LABEL_REVISION) or 'an unlabelled revision'}: attest "
            "the image again in CI"
        )
    branch = on_branch(root or project_dir(), revision, MAIN_REFS)
    if not branch:
        raise Unproven(
            f"{reference} was built from {revision}, which is not on main: release only what "
            "main built"
        )
    checks.append(f"provenance signed, revision {revision[:12]} on {branch}")
    for line in checks:
        log.info("verified %s", line)
    return Verification(reference, tuple(checks), skipped + skipped_provenance)


def _signed_record(
    client: RegistryClient, notation: Notation, image: ImageRef, kind: str
) -> tuple[Record, tuple[str, ...]]:
    """The newest record of KIND about IMAGE whose signature verifies, and a line for each newer
    one skipped: anyone who may push can add a record, so an unsigned one must not block."""
    from ..clients.records import read_records

    found = read_records(client, image.repository, image.digest, kind)
    if not found:
        raise Unproven(
            f"{image.name}@{image.digest} has no {kind}: CI's attest-image step did not run on it"
        )
    refusals: list[Unproven] = []
    for record in reversed(found):
        try:
            _verified(notation, f"{image.name}@{record.digest}", f"its {kind}")
        except Unproven as exc:
            refusals.append(exc)
            continue
        skipped = tuple(f"a newer {kind} skipped: {refusal}" for refusal in refusals)
        for line in skipped:
            log.warning("%s", line)
        return record, skipped
    older = f"; nor do the {len(found) - 1} older ones" if len(found) > 1 else ""
    raise Unproven(f"{refusals[0]}{older}")


def _verified(notation: Notation, reference: str, what: str) -> str:
    try:
        return notation.verify(reference)
    except Unproven as exc:
        raise Unproven(f"{what} ({reference.rsplit('@', 1)[1][:19]}): {exc}") from None


# The command line


def _notation(home: Path, login: RegistryLogin, image: ImageRef) -> Notation:
    """Notation in HOME (--notation-home), with the login the step uses (ACR's token too)."""
    from ..clients.notation import Notation
    from ..clients.registry import LOCAL_HOSTS

    local = image.registry.rsplit(":", 1)[0] in LOCAL_HOSTS
    return Notation(home, (image.registry,) if local else (), login.credentials)


def _common_flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--image", required=True, help="REPOSITORY@sha256:... (by digest)")
    parser.add_argument(
        "--notation-home",
        type=Path,
        required=True,
        help="Notation's folder (keys, certificates, trust store and policy) for this job",
    )


def _attest_flags(parser: argparse.ArgumentParser) -> None:
    _common_flags(parser)
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key", help="a signing key in --notation-home, by name (local)")
    keys.add_argument("--key-id", help="a key in Azure Key Vault (its key identifier URL)")
    parser.add_argument(
        "--plugin", default="azure-kv", help="Notation's plugin for --key-id (default azure-kv)"
    )
    parser.add_argument(
        "--plugin-config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the plugin's settings, e.g. self_signed=true for a self-signed Key Vault certificate",
    )
    parser.add_argument("--plugin-url", help="install the plugin from this archive URL first")
    parser.add_argument("--plugin-sha256", help="the archive's sha256 (from its release page)")


def _verify_flags(parser: argparse.ArgumentParser) -> None:
    _common_flags(parser)
    parser.add_argument(
        "--certificate", type=Path, required=True, help="the signing certificate to trust (PEM)"
    )
    parser.add_argument(
        "--identity",
        required=True,
        help="the signer's X.509 subject to trust, with C, ST and O (Notation needs them), "
        'e.g. "C=US,ST=WA,O=Example,CN=aiship"',
    )


@dataclass(frozen=True)
class AttestPlan:
    target: RegistryImage
    notation_home: Path
    signer: Signer
    revision: str  # the commit this CI run builds
    plugin_url: str | None = None  # install the Key Vault plugin from here first
    plugin_sha256: str = ""

    def describe(self) -> str:
        signer = self.signer
        key = (
            f"key {signer.key}"
            if signer.key
            else f"Key Vault key {signer.key_id} ({signer.plugin})"
        )
        return (
            f"record the SBOM and provenance of {self.target.image} and sign all three with {key}"
        )


@dataclass(frozen=True)
class VerifyPlan:
    target: RegistryImage
    notation_home: Path
    certificate: Path
    identity: str

    def describe(self) -> str:
        return (
            f"verify the signature, SBOM and provenance of {self.target.image} as signed by "
            f"{self.identity} with the certificate {self.certificate}"
        )


def _plan_attest(args: argparse.Namespace) -> AttestPlan:
    target = pinned_image(args)
    if args.plugin_url and not args.key_id:
        raise ConfigError("--plugin-url installs a plugin for --key-id: give --key-id too")
    plugin = args.plugin if args.key_id else None
    signer = Signer(args.key, args.key_id, plugin, _plugin_config(args.plugin_config))
    signer = federated_signer(signer, args.notation_home, os.environ)
    revision = git_revision(project_dir())
    if revision == "unknown":
        raise ConfigError(
            "cannot tell which commit this run builds (no GITHUB_SHA or BUILD_SOURCEVERSION, "
            "no git checkout here): run attest-image in the checkout it built"
        )
    return AttestPlan(
        target, args.notation_home, signer, revision, args.plugin_url, args.plugin_sha256 or ""
    )


def _plugin_config(items: list[str]) -> tuple[tuple[str, str], ...]:
    """--plugin-config NAME=VALUE pairs (an empty one, as an unset variable gives, is none)."""
    pairs = []
    for item in filter(None, items):
        name, equals, value = item.partition("=")
        if not (name and equals):
            raise ConfigError(f"--plugin-config {item!r}: write NAME=VALUE, e.g. self_signed=true")
        pairs.append((name, value))
    return tuple(pairs)


def _plan_verify(args: argparse.Namespace) -> VerifyPlan:
    target = pinned_image(args)
    from ..clients.notation import check_identity

    if not args.identity.strip():
        raise ConfigError("--identity is empty: set SIGNING_IDENTITY to the signer's X.509 subject")
    identity = check_identity(args.identity)
    _check_certificate(args.certificate)
    return VerifyPlan(target, args.notation_home, args.certificate, identity)


def _check_certificate(path: Path) -> None:
    """PATH holds a PEM certificate: Notation would trust nothing else."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"--certificate {path} not found: commit the signing certificate (the public part "
            "of the Key Vault key's) there"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--certificate {path} is not a PEM certificate ({exc}): commit the Key Vault "
            "certificate's public part in PEM (-----BEGIN CERTIFICATE-----)"
        ) from None


def _attest(plan: AttestPlan) -> Attestation:
    login, image = plan.target.login()
    notation = _notation(plan.notation_home, login, image)
    if plan.plugin_url:
        notation.install_plugin(plan.plugin_url, plan.plugin_sha256)
    return attest_image(login, image, notation, plan.signer, revision=plan.revision)


def _verify(plan: VerifyPlan) -> Verification:
    from ..support.outputs import summarize

    login, image = plan.target.login()
    notation = _notation(plan.notation_home, login, image)
    notation.trust("aiship", plan.certificate, plan.identity)
    try:
        verified = verify_image(login, image, notation)
    except Unproven as exc:
        summarize(f"### Image not verified: release refused\n\n**{exc}**\n")
        raise
    lines = "\n".join(f"- {check}" for check in verified.checks)
    lines += "".join(f"\n- warning: {line}" for line in verified.skipped)
    summarize(f"### Image verified: `{verified.image}`\n\n{lines}\n")
    return verified


COMMANDS = (
    Command(
        "attest-image",
        help="record the image's SBOM and provenance with it and sign all three (Notation)",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_attest_flags,
        plan=_plan_attest,
        run=_attest,
    ),
    Command(
        "verify-image",
        help="check an image's signature, SBOM and provenance before a release (exit 9 if not)",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_verify_flags,
        plan=_plan_verify,
        run=_verify,
    ),
)
