"""attest-image and verify-image with the real app image, the real local registry and the real
Notation: a signed image verifies; whatever CI did not prove is refused, one line each."""

from __future__ import annotations

import subprocess

import pytest

from aiship.clients.notation import Notation, certificate_subject
from aiship.clients.records import artifact_type, read_records, write_record
from aiship.clients.registry import ImageRef, RegistryClient, RegistryLogin
from aiship.clients.sbom import sbom_model
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
    attested = attest_image(login, image, ci, Signer(key="aiship"))
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
    attest_image(RegistryLogin(registry.host), image, elsewhere, Signer(key="aiship"))
    with pytest.raises(Unproven, match=r"^the image .*untrusted"):
        verify_image(RegistryLogin(registry.host), image, release, root)


def test_an_image_built_from_a_revision_not_on_main_is_refused(registry, pushed, history, tmp_path):
    root, _, feature = history
    image = pushed(feature)
    ci, release = homes(tmp_path, registry)
    attest_image(RegistryLogin(registry.host), image, ci, Signer(key="aiship"))
    with pytest.raises(Unproven, match=f"was built from {feature}, which is not on main"):
        verify_image(RegistryLogin(registry.host), image, release, root)


def test_an_sbom_whose_model_hash_was_altered_is_refused_signed_or_not(
    registry, pushed, history, tmp_path
):
    root, main, _ = history
    image = pushed(main)
    ci, release = homes(tmp_path, registry)
    login = RegistryLogin(registry.host)
    attest_image(login, image, ci, Signer(key="aiship"))
    client = RegistryClient(login)
    (sbom,) = read_records(client, image.repository, image.digest, SBOM)
    altered = sbom.payload
    for component in altered["components"]:
        if component["type"] == "machine-learning-model":
            component["hashes"] = [{"alg": "SHA-256", "content": "0" * 64}]
    forged = write_record(client, image.repository, image.digest, SBOM, altered)
    with pytest.raises(Unproven, match=r"^its sbom .*signature"):
        verify_image(login, image, release, root)
    # Even signed with CI's key, an SBOM that names another model than the image's label is not
    # the image's.
    ci.sign(f"{image.name}@{forged.digest}", key="aiship")
    with pytest.raises(Unproven, match="names model sha256 0000000000"):
        verify_image(login, image, release, root)


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
