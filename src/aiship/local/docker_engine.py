"""Make sure a Docker engine answers; as root, start Debian's dockerd when none does.

An engine started here runs with the flags this machine needs (no bridge, no iptables: containers
use the host's network), logs to STATE_DIR/dockerd.log and writes STATE_DIR/dockerd.pid, so that
whoever started it, in this process or a later one, can stop it again with `stop_engine`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..clients.docker import docker
from ..support.errors import ConfigError, StepError, Unavailable
from ..support.paths import cache_dir
from ..support.processes import gone, last_line, stop
from ..support.waiting import wait_for

log = logging.getLogger(__name__)

DOCKERD_FLAGS = ("--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false")
LOG_FILE = "dockerd.log"
PID_FILE = "dockerd.pid"


@dataclass(frozen=True)
class DockerEngine:
    """An engine that answers. `started` is true when we started it: then `stop()` stops it."""

    version: str
    started: bool
    state_dir: Path

    def stop(self, timeout: float = 30.0) -> None:
        if self.started:
            stop_engine(self.state_dir, timeout=timeout)


def engine_dir() -> Path:
    """dockerd's data and pid: in the cache, not a checkout's .local/, so that images and the
    build cache outlive a clone."""
    return cache_dir() / "dockerd"


def engine_version(timeout: float = 10.0) -> str | None:
    """The engine's version, or None when no engine answers."""
    try:
        version = docker(["version", "--format", "{{.Server.Version}}"], timeout=timeout).strip()
    except StepError:
        return None
    return version or None


def ensure_engine(state_dir: Path | None = None, timeout: float = 60.0) -> DockerEngine:
    """Return the engine that answers, starting dockerd (as root) when none does."""
    state_dir = state_dir or engine_dir()
    version = engine_version()
    if version:
        return DockerEngine(version=version, started=False, state_dir=state_dir)
    if os.environ.get("DOCKER_HOST"):
        raise Unavailable(
            f"no Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}: "
            "start that engine, or unset DOCKER_HOST to use (or start) the local one"
        )
    if os.geteuid() != 0:
        raise Unavailable(
            "no Docker engine answers and only root can start one: start the docker service "
            f"(or as root: dockerd {' '.join(DOCKERD_FLAGS)}), then retry"
        )
    return start_engine(state_dir, timeout=timeout)


def start_engine(state_dir: Path, timeout: float = 60.0) -> DockerEngine:
    """Start dockerd in the background and wait, at most `timeout` seconds, until it answers."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ConfigError("dockerd is not installed: install Debian's docker.io (./dev setup)")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / LOG_FILE
    log.info("starting dockerd (log: %s)", log_path)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [dockerd, *DOCKERD_FLAGS, f"--pidfile={state_dir / PID_FILE}"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for us does not kill the engine mid-write
        )

    def answer() -> str | None:
        if process.poll() is not None:
            raise Unavailable(
                f"dockerd exited with code {process.returncode} while starting: "
                f"{last_line(log_path.read_text(errors='replace'))}"
            )
        return engine_version(timeout=5)

    try:
        version = wait_for(answer, timeout=timeout, what="dockerd did not answer", interval=0.5)
    except Unavailable as exc:
        if process.poll() is None:
            stop(process.pid, "dockerd", timeout=10)
        raise Unavailable(f"{exc} (log: {log_path})") from None
    return DockerEngine(version=version, started=True, state_dir=state_dir)


def stop_engine(state_dir: Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the dockerd whose pid is in STATE_DIR; False when none of ours is running."""
    pid_path = (state_dir or engine_dir()) / PID_FILE
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return False
    if not _is_dockerd(pid):
        pid_path.unlink(missing_ok=True)
        return False
    log.info("stopping dockerd (pid %d)", pid)
    stop(pid, "dockerd", timeout=timeout)
    pid_path.unlink(missing_ok=True)
    return True


def _is_dockerd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd" and not gone(pid)
    except OSError:
        return False
