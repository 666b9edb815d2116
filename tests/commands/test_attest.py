"""attest-image and verify-image with the real app image, the real local registry and the real
Notation: a signed image verifies; whatever CI did not prove is refused, one line each."""

from __future__ import annotations

import copy
import logging
import subprocess

import pytest

from aiship.clients.notation import Notation, certificate_subject
from aiship.clients.records import artifact_type, read_records, write_record
from aiship.clients.registry import ImageRef, RegistryClient, RegistryLogin
from aiship.clients.sbom import image_sbom, sbom_model
from aiship.commands.attest import PROVENANCE, SBOM, Signer, attest_image, verify_image
from aiship.commands.push_image import push_image
from aiship.support.errors import Unproven
from tests.registries import run_step

pytestmark = pytest.mark.docker


@pytest.fixture
def history(tmp_path):
    """A git repository whose main holds one commit, and a branch with one more (not on main)."""
    root = tmp_path / "repo"
    root.mkdir()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    git("commit", "-q", "--allow-empty", "-m", "on main")
    main = git("rev-parse", "HEAD")
    git("checkout", "-q", "-b", "feature")
    git("commit", "-q", "--allow-empty", "-m", "on a branch")
    feature = git("rev-parse", "HEAD")
    git("checkout", "-q", "main")
    return root, main, feature


@pytest.fixture
def pushed(registry, image_builder, trained_model_dir):
    """push(revision) -> ImageRef of the app image built from REVISION, pushed, by digest."""

    def push(revision: str) -> ImageRef:
        built = image_builder(trained_model_dir, revision=revision)
        target = ImageRef.parse(f"{registry.host}/aiship:{revision[:12]}")
        digest = push_image(RegistryLogin(registry.host), target, source=built.tags[0]).digest
        return ImageRef(target.registry, target.repository, digest=digest)

    return push


def homes(tmp_path, registry):
    """CI's Notation (it signs) and the release's (it trusts CI's certificate only)."""
    ci = Notation(tmp_path / "ci", (registry.host,))
    certificate = ci.generate_test_key("aiship")
    release = Notation(tmp_path / "release", (registry.host,))
    release.trust("aiship", certificate, certificate_subject(certificate))
    return ci, release


def test_an_attested_image_verifies_with_its_sbom_and_provenance(
    registry, pushed, history, tmp_path
):
    root, main, _ = history
    image = pushed(main)
    ci, release = homes(tmp_path, registry)
    login = RegistryLogin(registry.host)
    attested = attest_image(login, image, ci, Signer(key="aiship"), revision=main)
    assert len(attested.signatures) == 3 and attested.bytes_pushed > 1000

    verified = verify_image(login, image, release, root)
    assert [line.split(":")[0].split(",")[0] for line in verified.checks] == [
        "image signed",
        "SBOM signed",
        "provenance signed",
    ]
    client = RegistryClient(login)
    (sbom,) = read_records(client, image.repository, image.digest, SBOM)
    (provenance,) = read_records(client, image.repository, image.digest, PROVENANCE)
    assert artifact_type(SBOM) == "application/vnd.cyclonedx+json"
    assert sbom_model(sbom.payload)[0] == "digits"
    assert provenance.payload["subject"][0]["digest"]["sha256"] == image.digest.split(":")[1]
    assert (
        provenance.payload["predicate"]["buildDefinition"]["externalParameters"]["revision"] == main
    )


def test_an_unsigned_image_is_refused(registry, pushed, history, tmp_path):
    root, main, _ = history
    image = pushed(main)
    _, release = homes(tmp_path, registry)
    with pytest.raises(Unproven, match=r"^the image \(sha256:.*\): .*signature"):
        verify_image(RegistryLogin(registry.host), image, release, root)


def test_an_image_signed_with_another_key_is_refused(registry, pushed, history, tmp_path):
    root, main, _ = history
    image = pushed(main)
    _, release = homes(tmp_path, registry)
    elsewhere = Notation(tmp_path / "elsewhere", (registry.host,))
    elsewhere.generate_test_key("aiship")
    attest_image(
        RegistryLogin(registry.host), image, elsewhere, Signer(key="aiship"), revision=main
    )
    with pytest.raises(Unproven, match=r"^the image .*untrusted"):
        verify_image(RegistryLogin(registry.host), image, release, root)


def test_an_image_built_from_a_revision_not_on_main_is_refused(registry, pushed, history, tmp_path):
    root, _, feature = history
    image = pushed(feature)
    ci, release = homes(tmp_path, registry)
    attest_image(RegistryLogin(registry.host), image, ci, Signer(key="aiship"), revision=feature)
    with pytest.raises(Unproven, match=f"was built from {feature}, which is not on main"):
        verify_image(RegistryLogin(registry.host), image, release, root)


def altered(client, image, kind, change) -> str:
    """A newer record of KIND about IMAGE: the attested one with CHANGE(payload) applied."""
    (record, *_) = reversed(read_records(client, image.repository, image.digest, kind))
    payload = copy.deepcopy(record.payload)
    change(payload)
    return write_record(client, image.repository, image.digest, kind, payload).digest


def other_model(sbom: dict) -> None:
    for component in sbom["components"]:
        if component["type"] == "machine-learning-model":
            component["hashes"] = [{"alg": "SHA-256", "content": "0" * 64}]


@pytest.fixture
def attested(registry, pushed, history, tmp_path):
    """An image built from main and attested by CI: (root, image, ci, release, client)."""
    root, main, _ = history
    image = pushed(main)
    ci, release = homes(tmp_path, registry)
    attest_image(RegistryLogin(registry.host), image, ci, Signer(key="aiship"), revision=main)
    return root, image, ci, release, RegistryClient(RegistryLogin(registry.host))


def test_newer_unsigned_records_are_skipped_with_a_warning_and_the_signed_ones_used(
    attested, caplog
):
    """Anyone who may push can add a record: one that does not verify must not block."""
    root, image, _, release, client = attested
    forged_sbom = altered(client, image, SBOM, other_model)
    forged_provenance = altered(client, image, PROVENANCE, lambda p: p.update(subject=[]))

    with caplog.at_level(logging.WARNING, logger="aiship.commands.attest"):
        verified = verify_image(RegistryLogin(client.login.host), image, release, root)

    assert [line.split(":")[0] for line in verified.skipped] == [
        f"a newer {SBOM} skipped",
        f"a newer {PROVENANCE} skipped",
    ]
    for digest, line in zip((forged_sbom, forged_provenance), verified.skipped, strict=True):
        assert f"({digest[:19]})" in line and "signature" in line
        assert line in caplog.messages
    assert verified.checks[1].startswith("SBOM signed, model digits")


def test_a_signed_record_is_used_only_when_none_newer_verifies(attested):
    root, image, ci, release, client = attested
    forged = altered(client, image, SBOM, other_model)
    ci.sign(f"{image.name}@{forged}", key="aiship")  # now the newest that verifies
    with pytest.raises(Unproven, match="names model sha256 0000000000"):
        verify_image(RegistryLogin(client.login.host), image, release, root)


def test_when_no_record_of_a_kind_verifies_the_newest_is_named(registry, pushed, history, tmp_path):
    root, main, _ = history
    image = pushed(main)
    ci, release = homes(tmp_path, registry)
    client = RegistryClient(RegistryLogin(registry.host))
    ci.sign(f"{image.name}@{image.digest}", key="aiship")
    sbom = image_sbom(client, image.repository, image.digest, name=image.name)
    write_record(client, image.repository, image.digest, SBOM, sbom)
    newest = write_record(client, image.repository, image.digest, SBOM, {**sbom, "version": 2})

    with pytest.raises(
        Unproven, match=rf"^its sbom \({newest.digest[:19]}\): .*; nor do the 1 older"
    ):
        verify_image(client.login, image, release, root)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda p: p.update(subject=[{"digest": {"sha256": "ab" * 32}}]),
            f"about another image \\({'ab' * 32}\\)",
        ),
        (
            lambda p: p["predicate"]["buildDefinition"]["externalParameters"].update(
                revision="f" * 40
            ),
            f"names revision {'f' * 40}, but the image was built from",
        ),
    ],
    ids=["another-image", "another-revision"],
)
def test_a_signed_provenance_about_another_image_or_revision_is_refused(attested, change, refusal):
    root, image, ci, release, client = attested
    forged = altered(client, image, PROVENANCE, change)
    ci.sign(f"{image.name}@{forged}", key="aiship")
    with pytest.raises(Unproven, match=refusal):
        verify_image(RegistryLogin(client.login.host), image, release, root)


def test_a_signed_image_without_an_sbom_or_a_provenance_is_refused(
    registry, pushed, history, tmp_path
):
    root, main, _ = history
    image = pushed(main)
    ci, release = homes(tmp_path, registry)
    client = RegistryClient(RegistryLogin(registry.host))
    ci.sign(f"{image.name}@{image.digest}", key="aiship")
    with pytest.raises(Unproven, match=f"@{image.digest} has no sbom: CI's attest-image"):
        verify_image(client.login, image, release, root)

    sbom = image_sbom(client, image.repository, image.digest, name=image.name)
    record = write_record(client, image.repository, image.digest, SBOM, sbom)
    ci.sign(f"{image.name}@{record.digest}", key="aiship")
    with pytest.raises(Unproven, match=f"@{image.digest} has no provenance: CI's attest-image"):
        verify_image(client.login, image, release, root)


def test_attest_image_refuses_an_image_built_from_another_revision(
    registry, pushed, history, tmp_path
):
    _, main, feature = history
    image = pushed(main)
    ci, _ = homes(tmp_path, registry)
    with pytest.raises(Unproven, match=f"is labelled {main}, but this run builds {feature}"):
        attest_image(
            RegistryLogin(registry.host), image, ci, Signer(key="aiship"), revision=feature
        )
    assert (
        read_records(
            RegistryClient(RegistryLogin(registry.host)), image.repository, image.digest, SBOM
        )
        == []
    )


@pytest.mark.parametrize("variable", ["GITHUB_SHA", "BUILD_SOURCEVERSION"])
def test_attest_image_takes_the_revision_from_the_ci_system(
    registry, pushed, history, tmp_path, variable
):
    """The CI system's own word for the commit, not the label the image carries."""
    _, main, feature = history
    image = pushed(main)
    ci, _ = homes(tmp_path, registry)
    done = run_step(
        "attest-image",
        *("--image", f"{image.name}@{image.digest}"),
        *("--notation-home", str(ci.home)),
        *("--key", "aiship"),
        env={variable: feature},
    )
    assert done.returncode == 9, done.stderr
    assert f"is labelled {main}, but this run builds {feature}" in done.stderr


def test_verify_image_on_the_command_line_exits_9_and_names_what_is_missing(
    registry, pushed, history, tmp_path
):
    """With paths relative to the folder it runs in, as a user types them, twice: the same
    answer each time, and Notation's trust store under --notation-home, nowhere else."""
    _, main, _ = history
    image = pushed(main)
    ci, _ = homes(tmp_path, registry)
    certificate = ci.generate_test_key("aiship")
    verify = (
        "verify-image",
        *("--image", f"{image.name}@{image.digest}"),
        *("--notation-home", "cli"),
        *("--certificate", str(certificate.relative_to(tmp_path))),
        *("--identity", certificate_subject(certificate)),
    )
    for _ in range(2):
        done = run_step(*verify, cwd=tmp_path)
        assert done.returncode == 9, done.stderr
        assert "error: the image (sha256:" in done.stderr
    assert (tmp_path / "cli" / "notation" / "trustpolicy.json").exists()
    assert not (tmp_path / ".notation").exists()
