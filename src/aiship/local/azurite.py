"""Azurite's blob service on 127.0.0.1: the local stand-in for Azure Blob Storage.

Started with the flags this machine needs (DESIGN.md): in memory, or persisted under a folder when
one is given, so that a restart keeps the blobs. `start()` waits, bounded, until it answers.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import requests

from ..clients.stores.azure_blob import DEV_ACCOUNT, DEV_ACCOUNT_KEY
from ..support.errors import ConfigError
from ..support.paths import cache_dir
from .server import HOST, LocalServer

log = logging.getLogger(__name__)

ACCOUNT = DEV_ACCOUNT
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


class Azurite(LocalServer):
    """One azurite-blob process; a context manager that stops it. `location=None` keeps no files."""

    name = "Azurite"

    def __init__(
        self, *, port: int | None = None, location: Path | None = None, log_path: Path | None = None
    ) -> None:
        super().__init__(port=port, log_path=log_path)
        self.location = Path(location) if location else None

    @property
    def account_url(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def command(self) -> list[str]:
        storage = ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        return [
            azurite_binary(),
            *("--blobHost", HOST, "--blobPort", str(self.port)),
            *storage,
            *FLAGS,
        ]

    def prepare(self) -> None:
        if self.location:
            self.location.mkdir(parents=True, exist_ok=True)

    def probe(self) -> bool:
        # Any HTTP answer (403 without credentials) means the blob service is up.
        requests.get(f"{self.account_url}?comp=list", timeout=1)
        return True
