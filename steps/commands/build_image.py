"""`build-image`: app code, wheelhouse and model in a minimal context, labelled from model.json.

The context holds only what .dockerignore lets through, so nothing else of the repository (training
code, tests, steps) can reach the image, and its layout is the same on every machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.card import CARD_FILE, MODEL_FILE, CardError, ModelCard, verify_model_dir

from ..clients.docker import docker
from ..clients.wheelhouse import ensure_wheelhouse
from ..support.errors import ConfigError
from ..support.git import git_branch, git_commit_time, git_revision, git_source
from ..support.labels import (
    LABEL_CREATED,
    LABEL_MODEL_NAME,
    LABEL_MODEL_SHA256,
    LABEL_MODEL_VERSION,
    LABEL_REVISION,
    LABEL_SOURCE,
    default_tags,
    tag_for,
)
from ..support.paths import APP_LOCK_FILE, PROJECT_DIR_VARIABLE, project_dir
from .command import REGISTRY_ENVIRONMENT, Command, check_acr, registry_flags

log = logging.getLogger(__name__)

DEFAULT_BASE_IMAGE = "python:3.11-slim"
WHEELHOUSE_DIR = ".build/wheelhouse"  # inside the context; must match Dockerfile and .dockerignore
MODEL_DIR = ".build/model"
# What the image is made of, from the project's root (assemble_context).
PROJECT_FILES = (Path("Dockerfile"), Path(".dockerignore"), Path("app"), APP_LOCK_FILE)


@dataclass(frozen=True)
class ImageBuild:
    """What to build. None means: git HEAD, the git remote `origin`, now.

    `network` is only for RUN steps, which need none (the wheelhouse is local): "host" suits an
    engine without a bridge, as here; "none" or "default" suit any other.
    """

    model_dir: Path
    base_image: str = DEFAULT_BASE_IMAGE
    tags: tuple[str, ...] = ()
    revision: str | None = None
    source: str | None = None
    created: str | None = None
    network: str = "host"


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    tags: tuple[str, ...]
    card: ModelCard
    labels: Mapping[str, str] = field(default_factory=dict)

    def outputs(self) -> dict[str, str]:
        return {
            "image": self.tags[0] if self.tags else self.image_id,
            "tags": ",".join(self.tags),
            "image_id": self.image_id,
            "model_version": self.card.version,
            "model_sha256": self.card.sha256,
            "revision": self.labels.get(LABEL_REVISION, ""),
        }


def build_image(
    build: ImageBuild,
    *,
    root: Path | None = None,
    cache: Path | None = None,
    timeout: float = 1800.0,
) -> BuiltImage:
    """`docker build` ROOT's Dockerfile (the project's: project_dir()) with the model of
    `build.model_dir`; returns the image id."""
    root = check_project(root or project_dir())
    try:
        card = verify_model_dir(build.model_dir)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    wheelhouse = ensure_wheelhouse(root / APP_LOCK_FILE, cache=cache)
    build_args = {
        "BASE_IMAGE": build.base_image,
        "REVISION": build.revision or git_revision(root),
        "CREATED": build.created or git_commit_time(root),
        "SOURCE": build.source or git_source(root),
        "MODEL_NAME": card.name,
        "MODEL_VERSION": card.version,
        "MODEL_SHA256": card.sha256,
    }
    with tempfile.TemporaryDirectory(prefix="aiship-build-") as tmp:
        context = assemble_context(Path(tmp) / "context", root, wheelhouse, build.model_dir)
        iidfile = Path(tmp) / "image-id"
        # --force-rm: a failed RUN leaves no stopped container behind (the legacy builder keeps
        # them by default)
        args = ["build", "--force-rm", "--network", build.network, "--iidfile", str(iidfile)]
        args += ["--file", str(context / "Dockerfile")]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        for tag in build.tags:
            args += ["--tag", tag]
        log.info("building the image of %s %s on %s", card.name, card.version, build.base_image)
        output = docker([*args, str(context)], timeout=timeout)
        log.debug("%s", output)
        image_id = iidfile.read_text().strip()
    labels = {
        LABEL_REVISION: build_args["REVISION"],
        LABEL_CREATED: build_args["CREATED"],
        LABEL_SOURCE: build_args["SOURCE"],
        LABEL_MODEL_NAME: card.name,
        LABEL_MODEL_VERSION: card.version,
        LABEL_MODEL_SHA256: card.sha256,
    }
    return BuiltImage(image_id=image_id, tags=tuple(build.tags), card=card, labels=labels)


def check_project(root: Path) -> Path:
    """ROOT, when it holds everything the image is built from."""
    missing = [str(path) for path in PROJECT_FILES if not (root / path).exists()]
    if missing:
        raise ConfigError(
            f"the project {root} has no {', '.join(missing)}: run the step in the root of the "
            f"repository to ship (or set {PROJECT_DIR_VARIABLE}); a new one starts from aiship's"
        )
    return root


def assemble_context(context: Path, root: Path, wheelhouse: Path, model_dir: Path) -> Path:
    """CONTEXT with Dockerfile, .dockerignore, app/, the wheelhouse and the model, nothing else."""
    context.mkdir(parents=True)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(root / name, context / name)
    shutil.copytree(root / "app", context / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(wheelhouse, context / WHEELHOUSE_DIR, copy_function=_link_or_copy)
    (context / MODEL_DIR).mkdir(parents=True)
    for name in (MODEL_FILE, CARD_FILE):
        _link_or_copy(Path(model_dir) / name, context / MODEL_DIR / name)
    return context


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link (the wheelhouse is large and read-only), or copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--model-dir", required=True, type=Path, help="model.onnx + model.json")
    parser.add_argument("--image", required=True, help="REPOSITORY to tag (with --acr: its name)")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        help="tag to set instead of the defaults (<git sha>-<model version>, branch); repeatable",
    )
    parser.add_argument(
        "--base-image",
        default=os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE,
        help=f"image to build on [BASE_IMAGE, default {DEFAULT_BASE_IMAGE}]",
    )


def _check(args: argparse.Namespace) -> str:
    if ":" in args.image.rsplit("/", 1)[-1] or "@" in args.image:
        raise ConfigError(f"--image {args.image!r}: give the repository only; tags go in --tag")
    acr = check_acr(args)
    where = f" in {acr}" if acr else ""
    root = check_project(project_dir())
    return (
        f"build {args.image}{where} from {root} with the model in {args.model_dir} "
        f"on {args.base_image}"
    )


def _run(args: argparse.Namespace) -> BuiltImage:
    repository = args.image
    if args.acr:
        from ..clients.acr import resolve_acr

        acr = resolve_acr(
            args.acr, subscription=args.subscription, resource_group=args.resource_group
        )
        repository = f"{acr.login_server}/{repository}"
    try:
        card = verify_model_dir(args.model_dir)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    root = project_dir()
    revision = git_revision(root)
    tags = tuple(f"{repository}:{tag_for(t)}" for t in args.tag) or default_tags(
        repository, revision, card.version, git_branch(root)
    )
    return build_image(
        ImageBuild(
            model_dir=args.model_dir, base_image=args.base_image, tags=tags, revision=revision
        ),
        root=root,
    )


COMMANDS = (
    Command(
        "build-image",
        help="build the app image with a model inside, labelled from model.json",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        check=_check,
        run=_run,
    ),
)
