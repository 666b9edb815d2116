"""Make the local base image `local/python:3.11-slim` from Debian packages (nothing is pulled).

debootstrap builds a minimal bookworm root filesystem with Debian's python3 (3.11, the version the
wheelhouse targets); its tarball is cached under the aiship cache, keyed by suite and package list,
and `docker import` turns it into an image. So the minute of debootstrap is paid once per machine
cache, and a fresh engine costs only an import.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..clients.docker import docker
from ..support.errors import ConfigError, StepError
from ..support.paths import cache_dir
from ..support.processes import last_line, run

log = logging.getLogger(__name__)

LOCAL_BASE_IMAGE = "local/python:3.11-slim"
# What the official python:3.11-slim sets, so the same Dockerfile behaves alike on both.
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)


@dataclass(frozen=True)
class BaseImageRecipe:
    """What goes into the base image; `mirror` None means debootstrap's default."""

    image: str = LOCAL_BASE_IMAGE
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = ("python3", "python3-venv", "python3-pip", "ca-certificates")
    mirror: str | None = None

    def key(self) -> str:
        text = f"{self.suite}|{self.variant}|{','.join(sorted(self.packages))}"
        return f"{self.suite}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def ensure_base_image(
    recipe: BaseImageRecipe | None = None, cache: Path | None = None, timeout: float = 900.0
) -> str:
    """The base image's id, importing (and if need be bootstrapping) it first."""
    recipe = recipe or BaseImageRecipe()
    image_id = image_id_of(recipe.image)
    if image_id:
        return image_id
    tarball = rootfs_tarball(recipe, cache, timeout=timeout)
    log.info("importing %s as %s", tarball, recipe.image)
    changes = [arg for change in IMAGE_CHANGES for arg in ("--change", change)]
    docker(["import", *changes, str(tarball), recipe.image], timeout=timeout)
    image_id = image_id_of(recipe.image)
    if not image_id:
        raise StepError(f"docker import of {tarball} did not leave {recipe.image}: retry")
    return image_id


def usable_base_image(env: Mapping[str, str] | None = None, timeout: float = 900.0) -> str:
    """The base image to build on here: $BASE_IMAGE when set (pulled if the engine lacks it, as a
    hosted CI runner can), else the local one made with debootstrap, which needs root: the
    fallback where nothing can be pulled."""
    env = os.environ if env is None else env
    wanted = env.get("BASE_IMAGE", "").strip()
    if not wanted:
        ensure_base_image(timeout=timeout)
        return LOCAL_BASE_IMAGE
    if image_id_of(wanted) is None:
        log.info("pulling %s (BASE_IMAGE)", wanted)
        docker(["pull", "--quiet", wanted], timeout=timeout)
    return wanted


def image_id_of(image: str) -> str | None:
    try:
        return docker(["image", "inspect", "--format", "{{.Id}}", image], timeout=30).strip()
    except StepError:
        return None


def rootfs_tarball(
    recipe: BaseImageRecipe, cache: Path | None = None, timeout: float = 900.0
) -> Path:
    """CACHE/base-image/<suite>-<key>.tar, made with debootstrap when not cached yet."""
    folder = (cache or cache_dir()) / "base-image"
    tarball = folder / f"{recipe.key()}.tar"
    if tarball.is_file():
        return tarball
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ConfigError("debootstrap is not installed: install it (./dev setup)")
    if os.geteuid() != 0:
        raise ConfigError(
            f"the base image {recipe.image} is missing and only root can debootstrap it: "
            "run the same command as root once"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".work-*"):  # left by a run that was killed, not a running one
        if not Path(f"/proc/{stale.name.removeprefix('.work-')}").exists():
            _remove_work(stale)
    work = folder / f".work-{os.getpid()}"
    rootfs = work / "rootfs"
    try:
        rootfs.mkdir(parents=True)
        log.info("debootstrap %s (%s) into %s", recipe.suite, ",".join(recipe.packages), rootfs)
        command = [
            debootstrap,
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(rootfs),
            *([recipe.mirror] if recipe.mirror else []),
        ]
        _run(command, timeout=timeout, what="debootstrap")
        _slim(rootfs)
        partial = work / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-c", "-f", str(partial), "."], timeout, what="tar")
        os.replace(partial, tarball)
    finally:
        _remove_work(work)
    return tarball


def _slim(rootfs: Path) -> None:
    """Drop what only the bootstrap needed: downloaded packages and apt's lists."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log"):
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()


def _run(command: list[str], timeout: float, what: str) -> None:
    done = run(command, what=what, timeout=timeout, hint="retry")
    if done.returncode != 0:
        raise StepError(f"{what} failed (exit {done.returncode}): {last_line(done.stderr)}")


def _remove_work(work: Path) -> None:
    """Remove the work folder, but never through a mount a failed debootstrap left behind."""
    if not work.exists():
        return
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(work.resolve()) + "/")
    ]
    for mount in sorted(mounts, reverse=True):
        with contextlib.suppress(StepError):  # checked below: what is still mounted stays
            run(["umount", "-l", mount], what=f"umount {mount}", timeout=30)
    if any(_is_mount(Path(m)) for m in mounts):
        log.warning("left %s in place: something is still mounted below it", work)
        return
    shutil.rmtree(work, ignore_errors=True)


def _is_mount(path: Path) -> bool:
    return os.path.ismount(path)
