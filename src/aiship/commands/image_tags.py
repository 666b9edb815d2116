"""Tags that only ever point at verified images, through the registry's HTTP API.

`promote-image` points a tag (the branch, e.g. `main`) at a digest that verify-push has passed;
`resolve-image` turns such a tag into REPOSITORY@sha256:... for the release to deploy.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from ..clients.registry import DIGEST, ImageRef, RegistryClient, RegistryLogin
from ..support.errors import ConfigError
from ..support.labels import LABEL_MODEL_SHA256, LABEL_MODEL_VERSION, LABEL_REVISION, tag_for
from .command import (
    REGISTRY_ENVIRONMENT,
    Command,
    RegistryImage,
    registry_flags,
    registry_image,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedImage:
    """The image to release, pinned by digest, and what its labels say it carries."""

    image: str  # REPOSITORY@sha256:...
    digest: str
    revision: str
    model_version: str
    model_sha256: str

    def outputs(self) -> dict[str, str]:
        return {
            "image": self.image,
            "digest": self.digest,
            "revision": self.revision,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
        }


@dataclass(frozen=True)
class PromotedImage:
    image: str  # REPOSITORY:TAG
    digest: str

    def outputs(self) -> dict[str, str]:
        return {"image": self.image, "digest": self.digest}


def resolve_image(
    login: RegistryLogin, image: ImageRef, digest: str = "", client: RegistryClient | None = None
) -> ResolvedImage:
    """REPOSITORY@sha256:... of `image`'s tag, or of `digest` once the registry confirms it."""
    client = client or RegistryClient(login)
    reference = _reference(image, digest)
    manifest = client.manifest(image.repository, reference)
    labels = (client.image_configs(image.repository, manifest)[0].get("config") or {}).get(
        "Labels"
    ) or {}
    resolved = ResolvedImage(
        image=f"{image.name}@{manifest.digest}",
        digest=manifest.digest,
        revision=labels.get(LABEL_REVISION, ""),
        model_version=labels.get(LABEL_MODEL_VERSION, ""),
        model_sha256=labels.get(LABEL_MODEL_SHA256, ""),
    )
    log.info(
        "%s is %s (revision %s, model %s)",
        f"{image.name}:{reference}" if not digest else resolved.image,
        resolved.image,
        resolved.revision or "?",
        resolved.model_version or "?",
    )
    return resolved


def promote_image(
    login: RegistryLogin, image: ImageRef, tag: str, client: RegistryClient | None = None
) -> PromotedImage:
    """Point `tag` at the image pinned by digest, without pulling or pushing any layer."""
    tag = _promotion(image, tag)
    client = client or RegistryClient(login)
    client.point_tag(image.repository, tag, image.digest)
    log.info("%s:%s -> %s", image.name, tag, image.digest)
    return PromotedImage(f"{image.name}:{tag}", image.digest)


def _reference(image: ImageRef, digest: str) -> str:
    """What to look up: DIGEST (only ever a sha256 digest), else IMAGE's tag."""
    if digest and not DIGEST.match(digest):
        raise ConfigError(f"--digest {digest!r} is not a sha256:<64 hex> digest")
    if not (digest or image.tag):
        raise ConfigError(f"--image {image}: give a tag to resolve (REPOSITORY:TAG) or --digest")
    return digest or image.tag


def _promotion(image: ImageRef, tag: str) -> str:
    """The tag to move, once IMAGE is pinned by digest."""
    if not image.digest:
        raise ConfigError(
            f"--image {image}: give the verified image by digest (REPOSITORY@sha256:...)"
        )
    return tag_for(tag)


@dataclass(frozen=True)
class ResolvePlan:
    target: RegistryImage
    digest: str  # empty: the tag's

    def describe(self) -> str:
        reference = _reference(self.target.image, self.digest)
        return f"resolve {self.target.image.name} {reference} to the digest to release"


@dataclass(frozen=True)
class PromotePlan:
    target: RegistryImage
    tag: str

    def describe(self) -> str:
        image = self.target.image
        return f"point {image.name}:{self.tag} at {image.digest}"


def _plan_resolve(args: argparse.Namespace) -> ResolvePlan:
    target = registry_image(args)
    digest = args.digest.strip()
    _reference(target.image, digest)
    return ResolvePlan(target, digest)


def _plan_promote(args: argparse.Namespace) -> PromotePlan:
    target = registry_image(args)
    return PromotePlan(target, _promotion(target.image, args.tag))


def _resolve_flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--image", required=True, help="REPOSITORY:TAG, e.g. the branch tag")
    parser.add_argument(
        "--digest", default="", help="release this digest instead of the tag's (empty: the tag's)"
    )


def _promote_flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--image", required=True, help="REPOSITORY@sha256:... (verified)")
    parser.add_argument("--tag", required=True, help="the tag to move, e.g. the branch name")


def _resolve(plan: ResolvePlan) -> ResolvedImage:
    login, image = plan.target.login()
    return resolve_image(login, image, plan.digest)


def _promote(plan: PromotePlan) -> PromotedImage:
    login, image = plan.target.login()
    return promote_image(login, image, plan.tag)


COMMANDS = (
    Command(
        "promote-image",
        help="point a tag at a verified image (by digest), moving no layers",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_promote_flags,
        plan=_plan_promote,
        run=_promote,
    ),
    Command(
        "resolve-image",
        help="the digest a tag points at (or check a given digest exists)",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_resolve_flags,
        plan=_plan_resolve,
        run=_resolve,
    ),
)
