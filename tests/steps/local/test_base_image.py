"""The local base image recipe."""

from __future__ import annotations

from steps.local.base_image import BaseImageRecipe


def test_base_image_cache_key_follows_suite_and_packages():
    recipe = BaseImageRecipe()

    assert recipe.key() == BaseImageRecipe(packages=tuple(reversed(recipe.packages))).key()
    assert recipe.key() != BaseImageRecipe(packages=(*recipe.packages, "curl")).key()
    assert recipe.key() != BaseImageRecipe(suite="trixie").key()
