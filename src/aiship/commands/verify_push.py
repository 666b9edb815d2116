"""`verify-push`: through the registry's HTTP API, the tag is exactly the image that was pushed.

The tag must resolve to the given digest (the registry's Docker-Content-Digest and the sha256 of
the manifest bytes), the manifest and config blob must be readable, and the config's labels must
carry the expected git revision and model sha256. A mismatch says which tag points where.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..clients.registry import DIGEST, ImageRef, RegistryClient, RegistryLogin
from ..support.errors import ConfigError, IntegrityError
from ..support.labels import (
    LABEL_MODEL_NAME,
    LABEL_MODEL_SHA256,
    LABEL_MODEL_VERSION,
    LABEL_REVISION,
    describe,
)
from ..support.outputs import summarize
from .command import (
    REGISTRY_ENVIRONMENT,
    Command,
    RegistryImage,
    registry_flags,
    registry_image,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifiedImage:
    image: ImageRef
    digest: str
    labels: Mapping[str, str]

    def outputs(self) -> dict[str, str]:
        return {
            "image": f"{self.image.name}@{self.digest}",
            "digest": self.digest,
            "revision": self.labels.get(LABEL_REVISION, ""),
            "model_sha256": self.labels.get(LABEL_MODEL_SHA256, ""),
        }

    def markdown(self) -> str:
        """The job summary: what CI built and pushed, as the registry now serves it."""
        label = self.labels.get
        model = " ".join(filter(None, (label(LABEL_MODEL_NAME), label(LABEL_MODEL_VERSION))))
        rows = [
            ("image", f"`{self.image.name}@{self.digest}`"),
            ("tag", f"`{self.image.tag}`"),
            ("git revision", f"`{label(LABEL_REVISION) or '?'}`"),
            ("model", f"{model or '?'} (sha256 `{label(LABEL_MODEL_SHA256) or '?'}`)"),
        ]
        lines = ["### Built and verified", "", "| | |", "|---|---|"]
        return "\n".join([*lines, *(f"| {name} | {value} |" for name, value in rows)]) + "\n"


def verify_push(
    login: RegistryLogin,
    image: ImageRef,
    digest: str,
    *,
    expect_revision: str | None = None,
    expect_model_sha256: str | None = None,
    client: RegistryClient | None = None,
) -> VerifiedImage:
    digest = _checked(image, digest)
    client = client or RegistryClient(login)
    manifest = client.manifest(image.repository, image.tag)
    if manifest.digest != digest:
        raise IntegrityError(
            f"tag {image} points at {manifest.digest}, not at the pushed {digest}: "
            "the tag was moved after the push; push and verify again"
        )
    labels: dict[str, str] = {}
    for config in client.image_configs(image.repository, manifest):
        labels = (config.get("config") or {}).get("Labels") or {}
        expected = {LABEL_REVISION: expect_revision, LABEL_MODEL_SHA256: expect_model_sha256}
        for label, want in expected.items():
            if want and labels.get(label) != want:
                raise IntegrityError(
                    f"{image.name}@{digest} (tag {image.tag}) has {label}="
                    f"{labels.get(label) or '(none)'}, expected {want}: it was built from "
                    "other inputs; rebuild and push"
                )
    log.info("verified %s = %s (%s)", image, digest, describe(labels))
    return VerifiedImage(image, digest, labels)


def _checked(image: ImageRef, digest: str) -> str:
    """The bare digest to expect, once IMAGE has a tag and DIGEST is a sha256 digest."""
    if not image.tag:
        raise ConfigError(f"--image {image}: give the tag to verify (REPOSITORY:TAG)")
    digest = digest.rsplit("@", 1)[-1]  # the pinned REPOSITORY@sha256:... works as well
    if not DIGEST.match(digest):
        raise ConfigError(f"--digest {digest!r} is not a sha256:<64 hex> digest")
    return digest


@dataclass(frozen=True)
class VerifyPlan:
    target: RegistryImage
    digest: str
    expect_revision: str | None = None
    expect_model_sha256: str | None = None

    def describe(self) -> str:
        expected = [
            self.expect_revision and "revision",
            self.expect_model_sha256 and "model sha256",
        ]
        labels = " and ".join(filter(None, expected)) or "no label"
        return f"check that {self.target.image} is {self.digest}, expecting {labels}"


def _plan(args: argparse.Namespace) -> VerifyPlan:
    target = registry_image(args)
    digest = _checked(target.image, args.digest)
    return VerifyPlan(target, digest, args.expect_revision, args.expect_model_sha256)


def _flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--image", required=True, help="REGISTRY/REPOSITORY:TAG")
    parser.add_argument("--digest", required=True, help="sha256:... as push-image output it")
    parser.add_argument("--expect-revision", help="git revision the image's label must carry")
    parser.add_argument("--expect-model-sha256", help="model sha256 the image's label must carry")


def _run(plan: VerifyPlan) -> VerifiedImage:
    login, image = plan.target.login()
    verified = verify_push(
        login,
        image,
        plan.digest,
        expect_revision=plan.expect_revision,
        expect_model_sha256=plan.expect_model_sha256,
    )
    summarize(verified.markdown())
    return verified


COMMANDS = (
    Command(
        "verify-push",
        help="check through the registry API that a tag is the pushed image",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
