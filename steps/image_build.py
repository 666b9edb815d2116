"""Build the image: app code, wheelhouse and model in a minimal context, labelled from model.json.

The context holds only what .dockerignore lets through, so nothing else of the repository (training
code, tests, steps) can reach the image, and its layout is the same on every machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from app.card import CARD_FILE, MODEL_FILE, CardError, ModelCard, verify_model_dir

from .cli import add_common
from .dockercli import docker
from .errors import ConfigError
from .registry_access import add_registry_args
from .wheelhouse import APP_LOCK, ensure_wheelhouse

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_IMAGE = "python:3.11-slim"
WHEELHOUSE_DIR = ".build/wheelhouse"  # inside the context; must match Dockerfile and .dockerignore
MODEL_DIR = ".build/model"

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_MODEL_NAME = "aiship.model.name"
LABEL_MODEL_VERSION = "aiship.model.version"
LABEL_MODEL_SHA256 = "aiship.model.sha256"


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


def build_image(
    build: ImageBuild, *, root: Path = ROOT, cache: Path | None = None, timeout: float = 1800.0
) -> BuiltImage:
    """`docker build` the Dockerfile with the model of `build.model_dir`; returns the image id."""
    try:
        card = verify_model_dir(build.model_dir)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    wheelhouse = ensure_wheelhouse(root / APP_LOCK.relative_to(ROOT), cache=cache)
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


def ci_revision(env: Mapping[str, str] | None = None) -> str:
    """The commit the CI system says it builds (GitHub Actions, Azure Pipelines), or ""."""
    env = os.environ if env is None else env
    return env.get("GITHUB_SHA") or env.get("BUILD_SOURCEVERSION") or ""


def git_revision(root: Path, env: Mapping[str, str] | None = None) -> str:
    """The commit being built: the CI system's word for it (GitHub, Azure), else the one checked
    out at ROOT, else "unknown"."""
    return ci_revision(env) or _git(root, "rev-parse", "HEAD") or "unknown"


def git_commit_time(root: Path) -> str:
    """When HEAD was committed, in UTC: a rebuild of the same commit and model gives the same
    labels, so the same image (the clock would change them on every build)."""
    stamp = _git(root, "log", "-1", "--format=%ct", "HEAD")
    moment = datetime.fromtimestamp(int(stamp), UTC) if stamp else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def git_branch(root: Path, env: Mapping[str, str] | None = None) -> str:
    """The branch being built: the CI system's word for it, else git's; "" when detached."""
    env = os.environ if env is None else env
    branch = (
        (env.get("GITHUB_REF_NAME") if env.get("GITHUB_REF_TYPE", "branch") == "branch" else "")
        or env.get("BUILD_SOURCEBRANCHNAME")
        or _git(root, "branch", "--show-current")
    )
    return branch


def tag_for(text: str) -> str:
    """A valid image tag from any text: [A-Za-z0-9_.-], at most 128 characters."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-")[:128]
    return tag or "unknown"


def default_tags(repository: str, revision: str, card: ModelCard, branch: str) -> tuple[str, ...]:
    """One tag per code x model pair (git sha, 12 characters, and model version), and the branch."""
    tags = [f"{repository}:{tag_for(revision[:12])}-{tag_for(card.version)}"]
    if branch:
        tags.append(f"{repository}:{tag_for(branch)}")
    return tuple(tags)


def git_source(root: Path) -> str:
    """The URL of the `origin` remote without any credentials in it, or "unknown"."""
    url = _git(root, "remote", "get-url", "origin")
    if not url:
        return "unknown"
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link (the wheelhouse is large and read-only), or copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build-image", help="build the app image with a model inside, labelled from model.json"
    )
    add_common(add_registry_args(parser))
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
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> dict:
    repository = args.image
    if args.acr:
        from . import azure
        from .acr import resolve_acr

        acr = resolve_acr(
            args.acr,
            subscription=azure.subscription_id(args.subscription),
            resource_group=args.resource_group,
        )
        repository = f"{acr.login_server}/{repository}"
    if ":" in repository.rsplit("/", 1)[-1] or "@" in repository:
        raise ConfigError(f"--image {args.image!r}: give the repository only; tags go in --tag")
    try:
        card = verify_model_dir(args.model_dir)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    revision = git_revision(ROOT)
    tags = tuple(f"{repository}:{tag_for(t)}" for t in args.tag) or default_tags(
        repository, revision, card, git_branch(ROOT)
    )
    built = build_image(
        ImageBuild(
            model_dir=args.model_dir, base_image=args.base_image, tags=tags, revision=revision
        )
    )
    return {
        "image": tags[0],
        "tags": ",".join(tags),
        "image_id": built.image_id,
        "model_version": card.version,
        "model_sha256": card.sha256,
        "revision": revision,
    }
