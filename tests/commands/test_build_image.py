"""`python -m aiship build-image`: default tags, outputs, and a rebuild that changes nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

from aiship.app.card import read_card
from aiship.clients.docker import docker
from aiship.support.git import git_revision
from aiship.support.labels import tag_for
from aiship.support.paths import PROJECT_DIR_VARIABLE
from tests.clirun import run_steps
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
