"""`push-image`: `docker push`, then the digest the registry now serves for the tag.

Output `image` is REPOSITORY@sha256:..., `digest` the bare sha256:... . Layers the registry has
already are not sent again. Progress: one line per layer, on a terminal as in CI (docker's output
is always read line by line, never drawn on a terminal, so its shape never changes), and the
count of layers is the registry's.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass

from ..clients.docker import docker_config, docker_error, docker_path, run_docker
from ..clients.registry import ImageRef, RegistryClient, RegistryLogin
from ..support.errors import ConfigError, IntegrityError
from ..support.processes import stream
from .command import (
    REGISTRY_ENVIRONMENT,
    Command,
    RegistryImage,
    registry_flags,
    registry_image,
)

log = logging.getLogger(__name__)

LAYER_DONE = re.compile(r"^([0-9a-f]{12}): (Pushed|Layer already exists|Mounted from .+)$")
DIGEST_LINE = re.compile(r": digest: (sha256:[0-9a-f]{64}) size: \d+")
QUIET = re.compile(r"^[0-9a-f]{12}: (Preparing|Waiting|Pushing)")


@dataclass(frozen=True)
class PushedImage:
    image: ImageRef  # REPOSITORY:TAG as pushed
    digest: str
    layers_pushed: int
    layers_present: int

    @property
    def pinned(self) -> str:
        return f"{self.image.name}@{self.digest}"

    def outputs(self) -> dict[str, str]:
        return {
            "image": self.pinned,
            "digest": self.digest,
            "tag": str(self.image),
            "repository": self.image.name,  # REGISTRY/REPOSITORY: an attestation's subject
        }


def push_image(
    login: RegistryLogin,
    image: ImageRef,
    *,
    source: str | None = None,
    timeout: float = 1800,
) -> PushedImage:
    """Push `image` (tagged from the local `source` first if that differs); resolve its digest."""
    _check_tagged(image)
    with docker_config(login) as config:
        if source and source != str(image):
            run_docker(["tag", source, str(image)], login, "tag an image for", timeout=60)
        output = _push(["--config", str(config), "push", str(image)], login, timeout)
    sent = sum(
        1
        for line in output.splitlines()
        if (match := LAYER_DONE.match(line.strip())) and match.group(2) == "Pushed"
    )
    client = RegistryClient(login)
    manifest = client.manifest(image.repository, image.tag)
    digest = manifest.digest
    said = DIGEST_LINE.search(output)
    if said and said.group(1) != digest:
        raise IntegrityError(
            f"{image} points at {digest} right after docker pushed {said.group(1)}: someone "
            "else pushed the same tag concurrently; push again"
        )
    layers = client.layer_count(image.repository, manifest)
    pushed = min(sent, layers)
    log.info(
        "pushed %s@%s (%d of its %d layers sent, %d already there)",
        image.name,
        digest,
        pushed,
        layers,
        layers - pushed,
    )
    return PushedImage(image, digest, pushed, layers - pushed)


def _push(args: list[str], login: RegistryLogin, timeout: float) -> str:
    """docker push, its output read line by line (docker prints plain lines to a pipe)."""
    returncode, output = stream(
        [docker_path(), *args], what="docker push", timeout=timeout, on_line=_show, hint="retry"
    )
    if returncode != 0:
        raise docker_error(output, login, "push to")
    return output


def _show(line: str) -> None:
    if not line or QUIET.match(line):
        return
    if LAYER_DONE.match(line) or DIGEST_LINE.search(line) or line.startswith("The push refers"):
        log.info("  %s", line)
    else:
        log.debug("  %s", line)


def _flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument(
        "--image",
        required=True,
        help="REGISTRY/REPOSITORY:TAG (with --acr the registry may be left out)",
    )


def _check_tagged(image: ImageRef) -> None:
    if not image.tag:
        raise ConfigError(f"--image {image}: give a tag (REPOSITORY:TAG) to push")


@dataclass(frozen=True)
class PushPlan:
    target: RegistryImage

    def describe(self) -> str:
        image = self.target.image
        return f"push {image} and read its digest back from {image.registry}"


def _plan(args: argparse.Namespace) -> PushPlan:
    target = registry_image(args)
    _check_tagged(target.image)
    return PushPlan(target)


def _run(plan: PushPlan) -> PushedImage:
    login, image = plan.target.login()
    return push_image(login, image, source=plan.target.given)


COMMANDS = (
    Command(
        "push-image",
        help="push REPOSITORY:TAG and output its digest (REPOSITORY@sha256:...)",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
