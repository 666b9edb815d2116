"""The docker command line, run as a process with a time limit and one-line errors."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence

from .errors import ConfigError, StepError
from .processes import last_line, run

log = logging.getLogger(__name__)


def docker_path() -> str:
    path = shutil.which("docker")
    if path is None:
        raise ConfigError("the docker command is not on PATH: install docker.io (./dev setup)")
    return path


def docker(args: Sequence[str], *, timeout: float = 60, check: bool = True) -> str:
    """Run `docker ARGS`, return its stdout; a failure names the command and docker's last line."""
    command = [docker_path(), *args]
    name = " ".join(["docker", *subcommand(args)])
    done = run(
        command,
        what=f"`{name}`",
        timeout=timeout,
        hint="check that the Docker engine is responsive (docker info)",
    )
    if check and done.returncode != 0:
        raise StepError(
            f"`{name}` failed (exit {done.returncode}): {last_line(done.stderr or done.stdout)}"
        )
    return done.stdout


def subcommand(args: Sequence[str]) -> list[str]:
    """The words that name what docker was asked to do: `build`, `image inspect`, ..."""
    words = []
    for arg in args[:2]:
        if not re.fullmatch(r"[a-z]+", arg):
            break
        words.append(arg)
    return words
