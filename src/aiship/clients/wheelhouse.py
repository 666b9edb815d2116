"""The wheelhouse: every wheel the image needs, downloaded on the host once per lock file.

The image build then installs with `pip install --no-index`, so it needs no network and no TLS, and
is the same anywhere. Wheels are fetched for the image's platform (Linux x86_64, CPython 3.11, glibc
2.36 as in Debian bookworm), not the host's, and checked against the lock's hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import StepError
from ..support.paths import cache_dir
from ..support.processes import last_line, run

log = logging.getLogger(__name__)

LOCK_NAME = "requirements.txt"  # the lock, copied into the wheelhouse it describes


@dataclass(frozen=True)
class Platform:
    """The interpreter and system the wheels are for."""

    python_version: str = "3.11"
    abi: str = "cp311"
    arch: str = "x86_64"
    glibc: tuple[int, int] = (2, 36)

    def pip_args(self) -> list[str]:
        """pip download's flags: every manylinux tag this glibc runs, newest first."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 4, -1)]
        tags += [f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}"]
        tags += [f"manylinux1_{self.arch}"]
        args = ["--python-version", self.python_version, "--implementation", "cp"]
        args += ["--abi", self.abi, "--only-binary=:all:"]
        for tag in tags:
            args += ["--platform", tag]
        return args


def wheelhouse_key(lock: Path, platform: Platform) -> str:
    """Hash of the lock file and the target platform: a new lock gets a new wheelhouse."""
    digest = hashlib.sha256(Path(lock).read_bytes())
    digest.update(repr(platform).encode())
    return digest.hexdigest()[:16]


def ensure_wheelhouse(
    lock: Path,
    platform: Platform | None = None,
    cache: Path | None = None,
    timeout: float = 900.0,
) -> Path:
    """CACHE/wheelhouse/<hash>, holding the wheels and the lock; downloaded only when missing."""
    platform = platform or Platform()
    folder = (cache or cache_dir()) / "wheelhouse"
    wheelhouse = folder / wheelhouse_key(lock, platform)
    if (wheelhouse / LOCK_NAME).is_file():
        return wheelhouse
    folder.mkdir(parents=True, exist_ok=True)
    # Download next to the final place, then rename: never a half-filled wheelhouse.
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
    try:
        log.info("downloading the wheels of %s into %s", lock, wheelhouse)
        _pip_download(lock, partial, platform, timeout)
        shutil.copyfile(lock, partial / LOCK_NAME)
        try:
            partial.rename(wheelhouse)
        except OSError:
            if not (wheelhouse / LOCK_NAME).is_file():  # not a concurrent run that won the race
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return wheelhouse


def _pip_download(lock: Path, dest: Path, platform: Platform, timeout: float) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
    command += [*platform.pip_args(), "--dest", str(dest), "--requirement", str(lock)]
    env = {**os.environ, "PIP_FIND_LINKS": ""}  # only the index, as on any other machine
    done = run(
        command, what=f"downloading the wheels of {lock}", timeout=timeout, env=env, hint="retry"
    )
    if done.returncode != 0:
        raise StepError(
            f"cannot download the wheels of {lock}: {last_line(done.stderr)} "
            "(regenerate the lock with the command in its header if a pin has no wheel)"
        )
