"""Tags that only ever point at verified images, through the registry's HTTP API.

`promote-image` points a tag (the branch, e.g. `main`) at a digest that verify-push has passed;
`resolve-image` turns such a tag into REPOSITORY@sha256:... for the release to deploy.
"""

from __future__ import annotations

import argparse
import logging

from .cli import add_common
from .errors import ConfigError, IntegrityError
from .image_build import LABEL_MODEL_VERSION, LABEL_REVISION, tag_for
from .registry import DIGEST, ImageRef, RegistryClient, RegistryLogin
from .registry_access import add_registry_args, registry_login
from .verify_push import image_configs

log = logging.getLogger(__name__)


def resolve_image(
    login: RegistryLogin, image: ImageRef, digest: str = "", client: RegistryClient | None = None
) -> dict:
    """REPOSITORY@sha256:... of `image`'s tag, or of `digest` once the registry confirms it."""
    client = client or RegistryClient(login)
    reference = digest or image.tag
    if digest and not DIGEST.match(digest):
        raise ConfigError(f"--digest {digest!r} is not a sha256:<64 hex> digest")
    if not reference:
        raise ConfigError(f"--image {image}: give a tag to resolve (REPOSITORY:TAG) or --digest")
    manifest = client.manifest(image.repository, reference)
    labels = (image_configs(client, image.repository, manifest)[0].get("config") or {}).get(
        "Labels"
    ) or {}
    pinned = f"{image.name}@{manifest.digest}"
    log.info(
        "%s is %s (revision %s, model %s)",
        f"{image.name}:{reference}" if not digest else pinned,
        pinned,
        labels.get(LABEL_REVISION, "?"),
        labels.get(LABEL_MODEL_VERSION, "?"),
    )
    return {
        "image": pinned,
        "digest": manifest.digest,
        "revision": labels.get(LABEL_REVISION, ""),
        "model_version": labels.get(LABEL_MODEL_VERSION, ""),
    }


def promote_image(
    login: RegistryLogin, image: ImageRef, tag: str, client: RegistryClient | None = None
) -> dict:
    """Point `tag` at the image pinned by digest, without pulling or pushing any layer."""
    if not image.digest:
        raise ConfigError(
            f"--image {image}: give the verified image by digest (REPOSITORY@sha256:...)"
        )
    client = client or RegistryClient(login)
    manifest = client.manifest(image.repository, image.digest)
    tag = tag_for(tag)
    moved = client.put_manifest(image.repository, tag, manifest)
    if moved != image.digest:
        raise IntegrityError(f"{image.name}:{tag} now points at {moved}, not {image.digest}")
    log.info("%s:%s -> %s", image.name, tag, image.digest)
    return {"image": f"{image.name}:{tag}", "digest": image.digest}


def register(commands: argparse._SubParsersAction) -> None:
    resolve = commands.add_parser(
        "resolve-image", help="the digest a tag points at (or check a given digest exists)"
    )
    add_common(add_registry_args(resolve))
    resolve.add_argument("--image", required=True, help="REPOSITORY:TAG, e.g. the branch tag")
    resolve.add_argument(
        "--digest", default="", help="release this digest instead of the tag's (empty: the tag's)"
    )
    resolve.set_defaults(run=_resolve)
    promote = commands.add_parser(
        "promote-image", help="point a tag at a verified image (by digest), moving no layers"
    )
    add_common(add_registry_args(promote))
    promote.add_argument("--image", required=True, help="REPOSITORY@sha256:... (verified)")
    promote.add_argument("--tag", required=True, help="the tag to move, e.g. the branch name")
    promote.set_defaults(run=_promote)


def _resolve(args: argparse.Namespace) -> dict:
    login, image = registry_login(args)
    return resolve_image(login, image, args.digest.strip())


def _promote(args: argparse.Namespace) -> dict:
    login, image = registry_login(args)
    return promote_image(login, image, args.tag)
