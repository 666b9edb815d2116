"""promote-image and resolve-image against a real docker-registry (no auth and htpasswd)."""

from __future__ import annotations

from tests.registries import PASSWORD, REVISION, USER, put_image, run_step

LABELS = {"org.opencontainers.image.revision": REVISION, "aiship.model.version": "1.4.0"}


def test_promote_then_resolve_gives_the_verified_digest(registry):
    digest = put_image(registry, "aiship", "0123456789ab-1.4.0", LABELS)
    other = put_image(registry, "aiship", "old", LABELS, content=b"old\n")
    repository = f"{registry.host}/aiship"

    promoted = run_step("promote-image", "--image", f"{repository}@{digest}", "--tag", "main")
    assert promoted.returncode == 0, promoted.log
    assert promoted.outputs == {"image": f"{repository}:main", "digest": digest}

    resolved = run_step("resolve-image", "--image", f"{repository}:main")
    assert resolved.returncode == 0, resolved.log
    assert resolved.outputs["image"] == f"{repository}@{digest}"
    assert (resolved.outputs["revision"], resolved.outputs["model_version"]) == (REVISION, "1.4.0")

    pinned = run_step("resolve-image", "--image", f"{repository}:main", "--digest", other)
    assert pinned.outputs["image"] == f"{repository}@{other}"


def test_promote_takes_only_a_digest(registry):
    put_image(registry, "aiship", "v1", LABELS)
    result = run_step("promote-image", "--image", f"{registry.host}/aiship:v1", "--tag", "main")
    assert result.returncode == 2
    assert "by digest" in result.stderr


def test_resolving_an_unknown_tag_or_digest_fails_clearly(registry):
    put_image(registry, "aiship", "v1", LABELS)
    missing = run_step("resolve-image", "--image", f"{registry.host}/aiship:main")
    assert missing.returncode == 4
    assert f"{registry.host}/aiship:main does not exist" in missing.stderr
    bad = run_step("resolve-image", "--image", f"{registry.host}/aiship:v1", "--digest", "abc")
    assert bad.returncode == 2 and "not a sha256" in bad.stderr


def test_promote_needs_push_rights(auth_registry):
    auth = (USER, PASSWORD)
    digest = put_image(auth_registry, "aiship", "v1", LABELS, auth=auth)
    image = f"{auth_registry.host}/aiship@{digest}"
    anonymous = run_step("promote-image", "--image", image, "--tag", "main")
    assert anonymous.returncode == 3 and "requires a login" in anonymous.stderr
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    logged_in = run_step("promote-image", "--image", image, "--tag", "main", env=env)
    assert logged_in.returncode == 0, logged_in.log
    assert PASSWORD not in logged_in.log
