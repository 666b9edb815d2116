"""What an image says about itself: the labels build-image sets and the tags it is given.

build-image writes them; verify-push, resolve-image and promote-image read them back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_MODEL_NAME = "aiship.model.name"
LABEL_MODEL_VERSION = "aiship.model.version"
LABEL_MODEL_SHA256 = "aiship.model.sha256"
# The base image as build-image resolved it (OCI image-spec annotations, set as labels).
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


def describe(labels: Mapping[str, str]) -> str:
    """`revision R, model NAME VERSION sha256 H`, with '?' for what an image does not carry."""
    return (
        f"revision {labels.get(LABEL_REVISION, '?')}, model {labels.get(LABEL_MODEL_NAME, '?')} "
        f"{labels.get(LABEL_MODEL_VERSION, '?')} sha256 {labels.get(LABEL_MODEL_SHA256, '?')}"
    )


def tag_for(text: str) -> str:
    """A valid image tag from any text: [A-Za-z0-9_.-], at most 128 characters."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-")[:128]
    return tag or "unknown"


def default_tags(
    repository: str, revision: str, model_version: str, branch: str
) -> tuple[str, ...]:
    """One tag per code x model pair (git sha, 12 characters, and model version), and the branch."""
    tags = [f"{repository}:{tag_for(revision[:12])}-{tag_for(model_version)}"]
    if branch:
        tags.append(f"{repository}:{tag_for(branch)}")
    return tuple(tags)
