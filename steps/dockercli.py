"""The docker command line, run as a process with a time limit and one-line errors."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence

from .errors import ConfigError, StepError, Unavailable

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
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(
            f"`{name}` did not finish within {timeout:.0f} s: "
            "check that the Docker engine is responsive (docker info)"
        ) from None
    if check and done.returncode != 0:
        raise StepError(
            f"`{name}` failed (exit {done.returncode}): {last_line(done.stderr or done.stdout)}"
        )
    return done.stdout


def last_line(text: str) -> str:
    """The last non-blank line of a command's output: usually the one that says what went wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def subcommand(args: Sequence[str]) -> list[str]:
    """The words that name what docker was asked to do: `build`, `image inspect`, ..."""
    words = []
    for arg in args[:2]:
        if not re.fullmatch(r"[a-z]+", arg):
            break
        words.append(arg)
    return words
