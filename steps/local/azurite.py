"""Azurite's blob service on 127.0.0.1: the local stand-in for Azure Blob Storage.

Started with the flags this machine needs (DESIGN.md): in memory, or persisted under a folder when
one is given, so that a restart keeps the blobs. `start()` waits, bounded, until it answers.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import requests

from ..cachedir import cache_dir
from ..errors import ConfigError, Unavailable
from ..waiting import wait_for

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, documented, and valid only for emulators.
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
FLAGS = ("--skipApiVersionCheck", "--disableTelemetry", "--loose", "--silent")


def azurite_binary() -> str:
    """$AZURITE_BLOB (set by ./dev), else `azurite-blob` on PATH, else the one ./dev installed."""
    installed = sorted(cache_dir().glob("azurite-*/node_modules/.bin/azurite-blob"))
    binary = (
        os.environ.get("AZURITE_BLOB")
        or shutil.which("azurite-blob")
        or (str(installed[-1]) if installed else None)
    )
    if not binary or not os.access(binary, os.X_OK):
        raise ConfigError(
            "azurite-blob not found: run ./dev setup and set AZURITE_BLOB to the path it installed "
            "(or put azurite-blob on PATH)"
        )
    return binary


class Azurite:
    """One azurite-blob process; a context manager that stops it. `location=None` keeps no files."""

    def __init__(
        self, *, port: int | None = None, location: Path | None = None, log_path: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.location = Path(location) if location else None
        self.log_path = Path(log_path) if log_path else None
        self._process: subprocess.Popen | None = None

    @property
    def account_url(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs (it leads its own process group)."""
        return self._process.pid if self.running else None

    def command(self) -> list[str]:
        storage = ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        return [
            azurite_binary(),
            *("--blobHost", HOST, "--blobPort", str(self.port)),
            *storage,
            *FLAGS,
        ]

    def start(self, timeout: float = 30.0) -> Azurite:
        command = self.command()
        if self.location:
            self.location.mkdir(parents=True, exist_ok=True)
        log.info("starting Azurite on %s", self.account_url)
        with open(self.log_path or os.devnull, "ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(self._answers, timeout=timeout, what=f"Azurite did not answer on {HOST}")
        except Unavailable:
            self.stop()
            raise
        return self

    def _answers(self) -> bool | None:
        if self._process is not None and self._process.poll() is not None:
            raise Unavailable(f"Azurite exited with code {self._process.returncode} at start")
        try:
            # Any HTTP answer (403 without credentials) means the blob service is up.
            requests.get(f"{self.account_url}?comp=list", timeout=1)
        except requests.ConnectionError:
            return None
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Azurite saves its metadata), SIGKILL if it does not exit in time."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        self._end(signal.SIGKILL, 5.0)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Azurite:
        return self if self.running else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
