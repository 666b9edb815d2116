"""The local base image recipe."""

from __future__ import annotations

from aiship.clients.docker import docker
from aiship.local import base_image as base_image_module
from aiship.local.base_image import LOCAL_BASE_IMAGE, BaseImageRecipe, usable_base_image


def test_base_image_cache_key_follows_suite_and_packages():
    recipe = BaseImageRecipe()

    assert recipe.key() == BaseImageRecipe(packages=tuple(reversed(recipe.packages))).key()
    assert recipe.key() != BaseImageRecipe(packages=(*recipe.packages, "curl")).key()
    assert recipe.key() != BaseImageRecipe(suite="trixie").key()


def test_a_pullable_base_image_is_used_as_it_is_and_debootstrap_never_runs(base_image, monkeypatch):
    """A hosted runner sets BASE_IMAGE: the stack and the tests build on it, with no debootstrap
    (which needs root). Here the image is already in the engine, under a mirror's name."""
    mirror = "mirror.example/python:3.11-slim"
    docker(["tag", base_image, mirror])
    monkeypatch.setattr(base_image_module, "ensure_base_image", refuse_to_bootstrap)
    try:
        assert usable_base_image({"BASE_IMAGE": mirror}) == mirror
    finally:
        docker(["rmi", "--no-prune", mirror], check=False)


def test_without_base_image_the_local_one_is_made(monkeypatch):
    made = []
    monkeypatch.setattr(base_image_module, "ensure_base_image", lambda **kw: made.append(kw))

    assert usable_base_image({}) == LOCAL_BASE_IMAGE
    assert len(made) == 1


def refuse_to_bootstrap(**_):
    raise AssertionError("debootstrap ran although BASE_IMAGE names an image")
