"""`python -m aiship build-image`: default tags, outputs, and a rebuild that changes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aiship.app.card import read_card
from aiship.clients.docker import docker
from aiship.commands.build_image import copy_project
from aiship.support.errors import AuthError
from aiship.support.git import git_revision
from aiship.support.labels import tag_for
from aiship.support.paths import PROJECT_DIR_VARIABLE
from tests.clirun import run_steps
from tests.registries import ACR_NAME, PASSWORD, RESOURCE_GROUP, USER, put_image, run_step
from tests.repo import REPO_ROOT

pytestmark = pytest.mark.docker


def build_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    ref = {"GITHUB_REF_NAME": "feature/x y", "GITHUB_REF_TYPE": "branch"}
    return run_steps("build-image", "--json", *args, env={**ref, **env}, timeout=900)


@pytest.fixture(scope="module")
def built(base_image, trained_model_dir):
    args = (
        "--model-dir",
        str(trained_model_dir),
        "--image",
        "aiship-cli-test",
        "--base-image",
        base_image,
    )
    first, second = build_command(*args), build_command(*args)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    outputs = json.loads(first.stdout), json.loads(second.stdout)
    yield outputs
    docker(["rmi", "--no-prune", *outputs[0]["tags"].split(",")], check=False)


def test_default_tags_are_code_by_model_and_the_branch(built, trained_model_dir):
    outputs, _ = built
    version = read_card(trained_model_dir).version
    unique = f"aiship-cli-test:{git_revision(REPO_ROOT)[:12]}-{version}"
    assert outputs["image"] == unique
    assert outputs["tags"].split(",") == [unique, "aiship-cli-test:feature-x-y"]
    assert outputs["model_sha256"] == read_card(trained_model_dir).sha256


def test_the_same_commit_and_model_build_the_same_image(built):
    first, second = built
    assert first["image_id"] == second["image_id"]


def test_a_tag_in_the_repository_is_refused(trained_model_dir):
    result = build_command("--model-dir", str(trained_model_dir), "--image", "repo:tag")
    assert result.returncode == 2 and "repository only" in result.stderr


def test_a_model_that_fails_its_check_is_refused_before_building(model_dir):
    (model_dir / "model.onnx").write_bytes(b"changed")
    result = build_command("--model-dir", str(model_dir), "--image", "aiship-cli-test")
    assert result.returncode == 2 and "sha256" in result.stderr


def test_the_image_is_built_from_the_project_the_step_runs_for(trained_model_dir, tmp_path):
    """Another repository's checkout (AISHIP_PROJECT_DIR, else the current folder) gives the
    Dockerfile, src/ and lock; what it lacks is named before anything is built."""
    args = ("--model-dir", str(trained_model_dir), "--image", "acme", "--dry-run")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")

    refused = build_command(*args, **{PROJECT_DIR_VARIABLE: str(tmp_path)})
    assert refused.returncode == 2
    missing = ".dockerignore, src, requirements/app.txt"
    assert f"error: the project {tmp_path} has no {missing}: run the step in" in refused.stderr

    (tmp_path / ".dockerignore").write_text("*\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "app.txt").write_text("")
    planned = build_command(*args, **{PROJECT_DIR_VARIABLE: str(tmp_path)})
    assert planned.returncode == 0, planned.stderr
    assert f"build acme from {tmp_path} with the model in" in json.loads(planned.stdout)["plan"]


@pytest.mark.parametrize(
    ("text", "tag"), [("feature/x y", "feature-x-y"), ("..", "unknown"), ("v1.2_3", "v1.2_3")]
)
def test_tags_are_made_valid(text, tag):
    assert tag_for(text) == tag


# A base image mirrored in a private registry (BASE_IMAGE, as the README suggests): the build
# pulls it with the sign-in the push uses.


@pytest.fixture
def small_project(tmp_path) -> Path:
    """aiship's project with a Dockerfile that only adds the model card to the base image: the
    pull of the base image is what is tested, in seconds."""
    root = copy_project(REPO_ROOT, tmp_path / "project")
    (root / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY .build/model/model.json /model/\n"
    )
    (root / ".dockerignore").write_text("*\n!.build/model/model.json\n")
    return root


def build_on(base: str, image: str, project: Path, model: Path, *flags: str, env=None):
    """build-image of IMAGE:mirrored on BASE, with no registry or Azure settings but ENV's."""
    return run_step(
        *("build-image", "--model-dir", str(model), "--image", image, "--tag", "mirrored"),
        *("--base-image", base, *flags),
        env={PROJECT_DIR_VARIABLE: str(project), **(env or {})},
    )


def test_a_base_image_in_the_registry_of_the_image_is_pulled_with_its_login(
    auth_registry, local_image, small_project, trained_model_dir
):
    put_image(auth_registry, "mirror/python", "3.11-slim", {}, auth=(USER, PASSWORD))
    base = local_image.forget(f"{auth_registry.host}/mirror/python:3.11-slim")
    image = f"{auth_registry.host}/aiship/app"
    local_image.forget(f"{image}:mirrored")

    refused = build_on(base, image, small_project, trained_model_dir)
    assert refused.returncode == AuthError.exit_code
    said = refused.stderr.strip().splitlines()[-1]
    assert said.startswith(f"error: `docker build` cannot pull the base image {base} without a ")
    assert "set REGISTRY_USERNAME and REGISTRY_PASSWORD for the registry of --image" in said

    login = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    built = build_on(base, image, small_project, trained_model_dir, env=login)
    assert built.returncode == 0, built.stderr
    assert PASSWORD not in built.log


def mirror_in_acr(acr, local_image) -> str:
    """A base image mirrored in the ACR stand-in, and not in the engine: a build must pull it."""
    token = acr.tokens.mint(["repository:mirror/python:pull,push"])
    put_image(acr.registry, "mirror/python", "3.11-slim", {}, bearer=token)
    return local_image.forget(f"{acr.login_server}/mirror/python:3.11-slim")


def test_a_base_image_mirrored_in_the_acr_is_pulled_with_its_entra_id_login(
    acr, local_image, small_project, trained_model_dir
):
    base = mirror_in_acr(acr, local_image)
    local_image.forget(f"{acr.login_server}/aiship/app:mirrored")
    in_acr = ("--acr", ACR_NAME, "--resource-group", RESOURCE_GROUP)

    built = build_on(base, "aiship/app", small_project, trained_model_dir, *in_acr, env=acr.env())

    assert built.returncode == 0, built.stderr
    assert ("/oauth2/token", "basic") in acr.tokens.calls  # the engine's pull, signed in
    for secret in acr.tokens.secrets:
        assert secret not in built.log


def test_a_base_image_the_identity_may_not_pull_names_the_role(
    acr, local_image, small_project, trained_model_dir
):
    base = mirror_in_acr(acr, local_image)
    acr.tokens.role = None
    in_acr = ("--acr", ACR_NAME, "--resource-group", RESOURCE_GROUP)

    refused = build_on(base, "aiship/app", small_project, trained_model_dir, *in_acr, env=acr.env())

    assert refused.returncode == AuthError.exit_code
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: registry {acr.login_server} denied pull of the base image {base}: the login "
        f"needs the AcrPull role on {ACR_NAME}"
    )
