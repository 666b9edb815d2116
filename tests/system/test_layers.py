"""Layer order dependencies -> model -> code: a change rebuilds only the layers after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiship.app.card import read_card, write_card
from aiship.commands.build_image import copy_project
from tests.repo import REPO_ROOT
from tests.system.containers import image_config

pytestmark = pytest.mark.docker

# The files of the repository that build-image reads.
SERVICE = Path("src", "aiship", "app")  # the service's code, the image's last layer


def layers(image_id: str) -> list[str]:
    return image_config(image_id)["RootFS"]["Layers"]


@pytest.fixture
def source_copy(tmp_path):
    """A copy of what the image is built from, to change without touching the repository."""
    return copy_project(REPO_ROOT, tmp_path / "project")


def test_layers_are_base_dependencies_model_code(built_image, base_image):
    base = layers(base_image)

    assert layers(built_image.image_id)[: len(base)] == base
    assert len(layers(built_image.image_id)) == len(base) + 3


def test_code_only_change_rebuilds_only_the_code_layer(
    built_image, image_builder, trained_model_dir, source_copy
):
    with open(source_copy / SERVICE / "__init__.py", "a") as f:
        f.write("# a code-only change\n")

    rebuilt = image_builder(trained_model_dir, root=source_copy, revision="f" * 40)

    before, after = layers(built_image.image_id), layers(rebuilt.image_id)
    assert after[:-1] == before[:-1]  # base, dependencies and model: reused, not rebuilt
    assert after[-1] != before[-1]


def test_model_only_change_keeps_the_dependency_layer(
    built_image, image_builder, model_dir, source_copy
):
    write_card(model_dir, read_card(model_dir).with_version("1.0.1"))

    rebuilt = image_builder(model_dir, root=source_copy)

    before, after = layers(built_image.image_id), layers(rebuilt.image_id)
    assert after[:-2] == before[:-2]  # base and dependencies
    assert after[-2] != before[-2]  # the model
