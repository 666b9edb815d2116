"""Notation, the pinned build, against the real docker-registry 2.8 (no referrers API, so the
referrers tag schema): signed digests verify; unsigned ones, other keys and identities, and
signatures altered in the registry are refused, each in plain words."""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from aiship.clients import notation as notation_module
from aiship.clients.go import NOTATION, NOTATION_TOOLS, ensure_notation, pinned_version
from aiship.clients.notation import (
    SIGNATURE_TYPE,
    Notation,
    certificate_subject,
    check_identity,
    notation_path,
    trust_policy,
)
from aiship.clients.records import read_records, referrers_tag, write_record
from aiship.clients.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    RegistryClient,
    RegistryLogin,
    sha256_digest,
)
from aiship.support.errors import AuthError, ConfigError, IntegrityError, StepError, Unproven
from tests.registries import PASSWORD, USER, put_image

REPO = "aiship/app"
KEY = "aiship"


@pytest.fixture(scope="session", autouse=True)
def built() -> Path:
    """The pinned notation, built into the cache when it is not there yet (a cold build: about
    20 s here)."""
    return ensure_notation()


@pytest.fixture
def signer(tmp_path) -> Notation:
    """CI's side: a home with the test key."""
    tool = Notation(tmp_path / "ci")
    tool.generate_test_key(KEY)
    return tool


@pytest.fixture
def release(tmp_path, signer) -> Notation:
    """The release's side: a home of its own that trusts the signer's certificate and identity."""
    tool = Notation(tmp_path / "release")
    certificate = signer.config_dir / "localkeys" / f"{KEY}.crt"
    tool.trust("release", certificate, certificate_subject(certificate))
    return tool


@pytest.fixture
def client(registry) -> RegistryClient:
    return RegistryClient(RegistryLogin(registry.host))


def image(registry, tag: str = "v1") -> str:
    digest = put_image(registry, REPO, tag, {"app": tag}, content=tag.encode())
    return f"{registry.host}/{REPO}@{digest}"


def tag_index(registry, reference: str) -> list[dict]:
    subject = reference.rsplit("@", 1)[1]
    answer = requests.get(
        f"{registry.url}/v2/{REPO}/manifests/{referrers_tag(subject)}",
        headers={"Accept": OCI_INDEX},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["manifests"]


def test_notation_path_is_the_pinned_build(built):
    assert notation_path() == str(built)
    said = subprocess.run([notation_path(), "version"], capture_output=True, text=True, check=True)
    assert f"Version:     {pinned_version(NOTATION_TOOLS / 'go.mod', NOTATION)}\n" in said.stdout


def test_a_signed_digest_verifies(registry, signer, release):
    reference = image(registry)

    signature = signer.sign(reference, key=KEY)

    assert release.verify(reference) == signature
    assert [d["digest"] for d in tag_index(registry, reference)] == [signature]


def test_the_signature_shares_the_referrers_tag_index_with_the_records(
    registry, client, signer, release
):
    reference = image(registry)
    subject = reference.rsplit("@", 1)[1]
    before = write_record(client, REPO, subject, "staging-pass", {"n": 1})

    signature = signer.sign(reference, key=KEY)
    after = write_record(client, REPO, subject, "staging-pass", {"n": 2})

    listed = {d["digest"]: d for d in tag_index(registry, reference)}
    assert list(listed) == [before.digest, signature, after.digest]
    assert listed[signature]["artifactType"] == SIGNATURE_TYPE
    assert listed[signature]["mediaType"] == OCI_MANIFEST
    manifest = client.manifest(REPO, signature).json()
    assert manifest["subject"]["digest"] == subject
    assert [r.digest for r in read_records(client, REPO, subject, "staging-pass")] == [
        before.digest,
        after.digest,
    ]
    assert release.verify(reference) == signature


def test_an_unsigned_digest_is_refused(registry, release):
    reference = image(registry)

    with pytest.raises(Unproven, match=r"has no signature: sign it first") as refused:
        release.verify(reference)

    assert refused.value.exit_code == 9
    assert str(refused.value).startswith(reference)


def test_a_signature_by_another_key_is_refused(tmp_path, registry, release):
    """Another home's key, with the very same name and subject: only the certificate differs."""
    intruder = Notation(tmp_path / "intruder")
    intruder.generate_test_key(KEY)
    reference = image(registry)
    signature = intruder.sign(reference, key=KEY)

    with pytest.raises(Unproven) as refused:
        release.verify(reference)

    assert str(refused.value) == (
        f"{reference} has no trusted signature: signed by an untrusted key ({signature[:19]}): "
        "sign it with the release key"
    )


def test_a_trusted_key_with_another_identity_is_refused(tmp_path, registry, signer):
    certificate = signer.config_dir / "localkeys" / f"{KEY}.crt"
    strict = Notation(tmp_path / "strict")
    strict.trust("release", certificate, "C=ZZ, ST=local, O=aiship, CN=someone-else")
    reference = image(registry)
    signer.sign(reference, key=KEY)

    with pytest.raises(Unproven, match=r"no trusted signature: signed by an untrusted identity"):
        strict.verify(reference)


def test_trust_replaces_the_certificate_and_the_policy(tmp_path, registry, signer, release):
    """Trusting a new certificate under the same store name drops the old one."""
    reference = image(registry)
    signer.sign(reference, key=KEY)
    other = Notation(tmp_path / "other")
    certificate = other.generate_test_key("next")

    release.trust("release", certificate, certificate_subject(certificate))

    store = release.config_dir / "truststore" / "x509" / "ca" / "release"
    assert [p.read_bytes() for p in store.iterdir()] == [certificate.read_bytes()]
    with pytest.raises(Unproven, match="signed by an untrusted key"):
        release.verify(reference)


def signature_parts(client: RegistryClient, signature: str) -> tuple[dict, dict]:
    manifest = client.manifest(REPO, signature).json()
    envelope = json.loads(client.blob(REPO, manifest["layers"][0]["digest"]))
    return manifest, envelope


def list_forged(client: RegistryClient, manifest: dict, envelope: dict, reference: str) -> str:
    """Push ENVELOPE in a copy of MANIFEST about REFERENCE, listed in its referrers index as a
    writer following the tag schema would."""
    subject = client.manifest(REPO, reference.rsplit("@", 1)[1])
    blob = json.dumps(envelope).encode()
    layer = manifest["layers"][0] | {"digest": client.push_blob(REPO, blob), "size": len(blob)}
    subject_descriptor = {"mediaType": subject.media_type, "digest": subject.digest}
    document = manifest | {
        "layers": [layer],
        "subject": subject_descriptor | {"size": len(subject.body)},
    }
    body = json.dumps(document).encode()
    forged = Manifest(sha256_digest(body), OCI_MANIFEST, body)
    client.push_manifest(REPO, forged.digest, forged)
    descriptor = {"mediaType": OCI_MANIFEST, "digest": forged.digest, "size": len(body)}
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor | {"artifactType": SIGNATURE_TYPE}],
        }
    ).encode()
    client.put_manifest(
        REPO, referrers_tag(subject.digest), Manifest(sha256_digest(index), OCI_INDEX, index)
    )
    return forged.digest


def test_a_signature_moved_to_another_image_is_refused(registry, client, signer, release):
    signed, other = image(registry, "v1"), image(registry, "v2")
    manifest, envelope = signature_parts(client, signer.sign(signed, key=KEY))

    list_forged(client, manifest, envelope, other)

    with pytest.raises(
        Unproven, match=r"no trusted signature: signature invalid: it signs another"
    ):
        release.verify(other)


def test_a_rewritten_signature_envelope_is_refused(registry, client, signer, release):
    """The signed payload rewritten to name another image, the signature itself kept."""
    signed, other = image(registry, "v1"), image(registry, "v2")
    manifest, envelope = signature_parts(client, signer.sign(signed, key=KEY))
    subject = client.manifest(REPO, other.rsplit("@", 1)[1])
    target = {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.body)}
    payload = json.dumps({"targetArtifact": target}).encode()
    envelope["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=")

    forged = list_forged(client, manifest, envelope, other)

    with pytest.raises(Unproven) as refused:
        release.verify(other)
    assert str(refused.value) == (
        f"{other} has no trusted signature: signature invalid: altered or corrupt "
        f"({forged[:19]}): sign it with the release key"
    )


def test_a_signature_altered_in_the_registrys_storage_is_refused(registry, client, signer, release):
    reference = image(registry)
    manifest, _ = signature_parts(client, signer.sign(reference, key=KEY))
    hexdigest = manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = registry.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    envelope = bytearray(data.read_bytes())
    first = envelope.index(b'"signature":"') + len(b'"signature":"')
    envelope[first] = ord("A") if envelope[first] != ord("A") else ord("B")  # same length
    data.write_bytes(bytes(envelope))

    with pytest.raises(Unproven, match=r"signature invalid: altered or corrupt \(its bytes do not"):
        release.verify(reference)


def test_generate_test_key_is_idempotent(tmp_path):
    tool = Notation(tmp_path / "home")

    first = tool.generate_test_key(KEY)
    made = {p: p.read_bytes() for p in (first, first.with_suffix(".key"))}
    keys = (tool.config_dir / "signingkeys.json").read_text()
    second = tool.generate_test_key(KEY)

    assert second == first == tool.config_dir / "localkeys" / f"{KEY}.crt"
    assert {p: p.read_bytes() for p in made} == made
    assert (tool.config_dir / "signingkeys.json").read_text() == keys
    assert json.loads(keys)["keys"] == [
        {"name": KEY, "keyPath": str(first.with_suffix(".key")), "certPath": str(first)}
    ]
    assert stat.S_IMODE(first.with_suffix(".key").stat().st_mode) == 0o600
    assert certificate_subject(first) == "CN=aiship,O=aiship,ST=local,C=ZZ"
    listed = subprocess.run(
        [notation_path(), "key", "list"],
        env={**os.environ, "XDG_CONFIG_HOME": str(tool.home)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert KEY in listed.stdout and str(first.with_suffix(".key")) in listed.stdout


def test_credentials_reach_notation_through_its_environment_only(
    tmp_path, auth_registry, monkeypatch
):
    digest = put_image(auth_registry, REPO, "v1", {"app": "1"}, auth=(USER, PASSWORD))
    reference = f"{auth_registry.host}/{REPO}@{digest}"
    commands: list[list[str]] = []
    real_run = notation_module.run

    def spy(command, **kwargs):
        commands.append(list(command))
        return real_run(command, **kwargs)

    monkeypatch.setattr(notation_module, "run", spy)
    monkeypatch.setenv("REGISTRY_USERNAME", USER)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    tool = Notation(tmp_path / "ci")
    certificate = tool.generate_test_key(KEY)
    tool.trust("release", certificate, certificate_subject(certificate))

    signature = tool.sign(reference, key=KEY)
    assert tool.verify(reference) == signature
    assert commands and not any(PASSWORD in " ".join(command) for command in commands)

    monkeypatch.setenv("REGISTRY_PASSWORD", "wrong-" + PASSWORD)
    with pytest.raises(AuthError, match="refused notation's login") as refused:
        tool.verify(reference)
    assert PASSWORD not in str(refused.value)


def test_a_key_vault_key_goes_through_its_plugin(registry, signer):
    """No plugin is installed here: notation took --id with --plugin and looked for it."""
    reference = image(registry)
    key_id = "https://aiship-kv.vault.azure.net/keys/release/0123456789abcdef"

    with pytest.raises(ConfigError) as failed:
        signer.sign(
            reference, key_id=key_id, plugin="azure-kv", plugin_config={"self_signed": "true"}
        )

    plugins = signer.config_dir / "plugins" / "azure-kv"
    assert str(failed.value) == (
        f"notation plugin azure-kv is not installed: put its executable in {plugins}/ "
        "(notation plugin install)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "sign with a key name, or with a key id and its plugin: one of the two"),
        ({"key": KEY, "plugin": "azure-kv"}, "sign with a key name"),
        ({"key_id": "https://kv/keys/k"}, "sign with a key name"),
    ],
)
def test_sign_needs_one_kind_of_key(signer, options, message):
    with pytest.raises(ConfigError, match=message):
        signer.sign("127.0.0.1:5000/aiship/app@sha256:" + "a" * 64, **options)


def test_only_digests_are_signed_or_verified(signer):
    for call in (lambda r: signer.sign(r, key=KEY), signer.verify):
        with pytest.raises(ConfigError, match="is not REPOSITORY@sha256"):
            call("127.0.0.1:5000/aiship/app:v1")


def test_verify_before_trust_says_so(tmp_path, registry, signer):
    reference = image(registry)
    signer.sign(reference, key=KEY)

    with pytest.raises(ConfigError, match=r"trusts no key yet: call trust\(\)"):
        Notation(tmp_path / "empty").verify(reference)


IDENTITIES = [
    ("C=US,ST=WA,O=Example,CN=aiship", True),
    ("x509.subject: C=ZZ, ST=local, O=aiship, CN=release", True),
    ("CN=a\\,b,O=Example,ST=WA,C=US", True),  # an escaped comma is part of the value
    ("CN=aiship;O=Example;S=WA;C=US", True),  # S for ST, RDNs split by semicolons
    ('CN="a,b",O=Example,ST=WA,C=US', False),  # no quoted values
    ("C=US,ST=WA,O=Example,emailAddress=ci@example.org", True),
    ("CN=aiship,O=Example,C=US", False),  # what our docs said: no ST
    ("C=US,ST=WA,CN=aiship", False),
    ("C=US,ST=WA,O=Example,O=Other", False),
    ("C=US+ST=WA,O=Example", False),
    ("C=US,ST=WA,O=#0403616263", False),
    ("aiship", False),
    ("C=US,,ST=WA,O=Example", False),
]


@pytest.mark.parametrize(("identity", "accepted"), IDENTITIES)
def test_the_identity_check_agrees_with_notation(tmp_path, identity, accepted):
    """check_identity refuses exactly what the pinned Notation's trust policy refuses, before any
    step runs: the subject our docs once gave (no ST) failed only at the first release."""
    subject = identity.removeprefix("x509.subject:").strip()
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(trust_policy("p", subject)))  # the check itself bypassed
    imported = subprocess.run(
        [notation_path(), "policy", "import", "--force", str(policy)],
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (imported.returncode == 0) is accepted, imported.stderr
    if accepted:
        assert check_identity(identity) == subject
    else:
        with pytest.raises(ConfigError, match=r"identity .* (lacks|not an X.509|Notation takes)"):
            check_identity(identity)


STUB_PLUGIN = """#!{python}
# A stand-in for notation-azure-kv: it answers Notation's plugin protocol (metadata), records
# what describe-key was given (its request, and the token file's content), and stops there.
import json, os, sys
command = sys.argv[1]
if command == "get-plugin-metadata":
    print(json.dumps({{
        "name": "azure-kv", "description": "stub", "version": "1.2.1", "url": "https://x",
        "supportedContractVersions": ["1.0"], "capabilities": ["SIGNATURE_GENERATOR.RAW"],
    }}))
    sys.exit(0)
token_file = os.environ.get("AZURE_FEDERATED_TOKEN_FILE", "")
seen = {{
    "request": json.load(sys.stdin),
    "token": open(token_file).read() if token_file else "",
    "mode": oct(os.stat(token_file).st_mode & 0o777) if token_file else "",
}}
with open({record!r}, "a") as record:
    record.write(json.dumps(seen) + "\\n")
sys.stderr.write(json.dumps({{"errorCode": "ERROR", "errorMessage": "recorded"}}))
sys.exit(1)
"""


def test_the_key_vault_plugin_signs_in_with_a_fresh_assertion_each_time(
    tmp_path, registry, tokens, monkeypatch
):
    """In a GitHub job federated with Azure, the plugin's credential is `workloadid` with a token
    file written just before each signature: never the job's first, long-expired assertion."""
    import sys

    from aiship.commands.attest import Signer, federated_signer

    fake = tokens
    for name, value in fake.job_environment().items():
        monkeypatch.setenv(name, value)
    home, record = tmp_path / "ci", tmp_path / "seen.jsonl"
    tool = Notation(home)
    plugin = tool.config_dir / "plugins" / "azure-kv" / "notation-azure-kv"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(STUB_PLUGIN.format(python=sys.executable, record=str(record)))
    plugin.chmod(0o700)
    key_id = "https://aiship-kv.vault.azure.net/keys/release/0123456789abcdef"
    given = Signer(key_id=key_id, plugin="azure-kv", plugin_config=(("self_signed", "true"),))

    signer = federated_signer(given, home, os.environ)
    for _ in range(2):
        with pytest.raises(StepError, match="recorded"):
            signer.sign(tool, image(registry))

    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert [entry["request"]["pluginConfig"] for entry in seen] == [
        {"self_signed": "true", "credential_type": "workloadid"}
    ] * 2
    assert [entry["token"] for entry in seen] == fake.minted and len(set(fake.minted)) == 2
    assert [entry["mode"] for entry in seen] == ["0o600"] * 2
    assert not (home / "github-oidc-token").exists(), "the assertion outlives its signature"
    configured = Signer(
        key_id=key_id, plugin="azure-kv", plugin_config=(("credential_type", "azurecli"),)
    )
    assert federated_signer(configured, home, os.environ) == configured


def plugin_archive() -> bytes:
    """A .tar.gz holding notation-azure-kv: a script that answers get-plugin-metadata as a
    signing plugin does (notation runs it to check the plugin before installing it)."""
    import gzip
    import io
    import tarfile

    metadata = {
        "name": "azure-kv",
        "description": "a stand-in for the Azure Key Vault plugin",
        "version": "1.2.3",
        "url": "https://example.org/notation-azure-kv",
        "supportedContractVersions": ["1.0"],
        "capabilities": ["SIGNATURE_GENERATOR.RAW"],
    }
    script = f"#!/bin/sh\ncat > /dev/null\necho {shlex.quote(json.dumps(metadata))}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("notation-azure-kv")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return gzip.compress(buffer.getvalue())


def test_the_key_vault_plugin_installs_only_with_the_archives_sha256(
    tmp_path, https_fake_server, monkeypatch
):
    """From a loopback HTTPS server (notation takes no other scheme), trusted through
    SSL_CERT_FILE as Go reads it: a wrong sha256 installs nothing, the right one installs."""
    import hashlib

    archive = plugin_archive()
    https_fake = https_fake_server
    https_fake.server.clear()
    https_fake.server.expect_request("/notation-azure-kv.tar.gz").respond_with_data(
        archive, content_type="application/gzip"
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(https_fake.ca_pem))
    tool = Notation(tmp_path / "ci")
    url = f"{https_fake.url}/notation-azure-kv.tar.gz"
    installed = tool.config_dir / "plugins" / "azure-kv" / "notation-azure-kv"

    with pytest.raises(IntegrityError, match=f"^the plugin archive at {url} does not have "):
        tool.install_plugin(url, "0" * 64)
    assert not installed.exists()

    tool.install_plugin(url, hashlib.sha256(archive).hexdigest())
    assert os.access(installed, os.X_OK) and b"a stand-in for" in installed.read_bytes()
    https_fake.server.clear()
    with pytest.raises(ConfigError, match=r"--plugin-sha256 'ABC' is not a sha256"):
        tool.install_plugin(url, "ABC")
