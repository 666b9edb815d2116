"""`build-image`: the service, wheelhouse and model in a minimal context, labelled from model.json.

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

from aiship.app.card import CARD_FILE, MODEL_FILE, CardError, ModelCard, verify_model_dir

from ..clients.docker import build as docker_build
from ..clients.docker import image_layers
from ..clients.registry import RegistryLogin
from ..clients.wheelhouse import ensure_wheelhouse
from ..support.errors import ConfigError, StepError
from ..support.git import git_branch, git_commit_time, git_revision, git_source
from ..support.labels import (
    BASE_DIGEST,
    BASE_NAME,
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
from .command import REGISTRY_ENVIRONMENT, AcrTarget, Command, acr_target, registry_flags

log = logging.getLogger(__name__)

DEFAULT_BASE_IMAGE = "python:3.11-slim"
WHEELHOUSE_DIR = ".build/wheelhouse"  # inside the context; must match Dockerfile and .dockerignore
MODEL_DIR = ".build/model"
# The project's Python source, copied into the context whole: its .dockerignore picks what the
# image gets (for aiship's own project, the service: src/aiship/__init__.py and src/aiship/app/).
SOURCE_DIR = Path("src")
# What the image is made of, from the project's root (assemble_context).
PROJECT_FILES = (Path("Dockerfile"), Path(".dockerignore"), SOURCE_DIR, APP_LOCK_FILE)


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
    login: RegistryLogin | None = None,
) -> BuiltImage:
    """`docker build` ROOT's Dockerfile (the project's: project_dir()) with the model of
    `build.model_dir`, pulling the base image with LOGIN when given; returns the image id."""
    root = check_project(root or project_dir())
    try:
        card = verify_model_dir(build.model_dir)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    wheelhouse = ensure_wheelhouse(root / APP_LOCK_FILE, cache=cache)
    build_args = {
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
        args = ["--force-rm", "--network", build.network, "--iidfile", str(iidfile)]
        args += ["--file", str(context / "Dockerfile")]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        for tag in build.tags:
            args += ["--tag", tag]
        log.info("building the image of %s %s on %s", card.name, card.version, build.base_image)
        output, base = docker_build(
            [*args, str(context)], base_image=build.base_image, login=login, timeout=timeout
        )
        log.debug("%s", output)
        image_id = iidfile.read_text().strip()
    # The digest labelled was resolved before the build: the image must stand on that base's
    # layers, or the tag moved in between.
    if image_layers(image_id)[: len(base.layers)] != base.layers:
        raise StepError(
            f"the image was not built on {base.name} as resolved ({base.digest}): the tag moved "
            "during the build; build again"
        )
    labels = {
        BASE_NAME: base.name,
        BASE_DIGEST: base.digest,
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


def copy_project(root: Path, dest: Path) -> Path:
    """ROOT's PROJECT_FILES in DEST: what an image is built from, as a new project starts (a
    copy of aiship's), or to change without touching ROOT."""
    for path in PROJECT_FILES:
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        if (root / path).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(root / path, dest / path, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(root / path, dest / path)
    return dest


def assemble_context(context: Path, root: Path, wheelhouse: Path, model_dir: Path) -> Path:
    """CONTEXT with Dockerfile, .dockerignore, src/, the wheelhouse and the model, nothing else."""
    context.mkdir(parents=True)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(root / name, context / name)
    shutil.copytree(
        root / SOURCE_DIR, context / SOURCE_DIR, ignore=shutil.ignore_patterns("__pycache__")
    )
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


@dataclass(frozen=True)
class BuildPlan:
    repository: str  # with an ACR, the repository in it, the login server found at run time
    acr: AcrTarget | None
    root: Path
    model_dir: Path
    card: ModelCard
    base_image: str
    tags: tuple[str, ...] = ()  # --tag; none: the defaults

    def describe(self) -> str:
        where = f" in {self.acr.describe()}" if self.acr else ""
        return (
            f"build {self.repository}{where} from {self.root} with the model in {self.model_dir} "
            f"on {self.base_image}"
        )


def _plan(args: argparse.Namespace) -> BuildPlan:
    if ":" in args.image.rsplit("/", 1)[-1] or "@" in args.image:
        raise ConfigError(f"--image {args.image!r}: give the repository only; tags go in --tag")
    acr = acr_target(args)
    root = check_project(project_dir())
    try:
        card = verify_model_dir(args.model_dir)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    tags = tuple(tag_for(tag) for tag in filter(None, args.tag))
    return BuildPlan(args.image, acr, root, args.model_dir, card, args.base_image, tags)


def _run(plan: BuildPlan) -> BuiltImage:
    from ..clients.login import base_image_login

    repository, found, credential = plan.repository, None, None
    if plan.acr:
        from ..clients import azure
        from ..clients.acr import resolve_acr

        credential = azure.credential()
        found = resolve_acr(
            plan.acr.name,
            subscription=plan.acr.subscription,
            resource_group=plan.acr.resource_group,
            token_credential=credential,
        )
        repository = f"{found.login_server}/{repository}"
    # A private mirror of the base image is pulled with the push's own sign-in.
    login = base_image_login(plan.base_image, repository, acr=found, token_credential=credential)
    revision = git_revision(plan.root)
    tags = tuple(f"{repository}:{tag}" for tag in plan.tags) or default_tags(
        repository, revision, plan.card.version, git_branch(plan.root)
    )
    return build_image(
        ImageBuild(
            model_dir=plan.model_dir, base_image=plan.base_image, tags=tags, revision=revision
        ),
        root=plan.root,
        login=login,
    )


COMMANDS = (
    Command(
        "build-image",
        help="build the app image with a model inside, labelled from model.json",
        epilog=REGISTRY_ENVIRONMENT,
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
