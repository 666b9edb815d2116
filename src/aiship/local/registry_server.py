"""Debian's `docker-registry` (distribution v2.8) on 127.0.0.1: filesystem storage, optional auth.

Auth is none, htpasswd (Basic) or token (Bearer: the registry checks JWTs signed by a key whose
certificate is in `rootcertbundle`, as a real token service issues them). The registry logs to
ROOT/registry.log; `start()` waits, bounded, until /v2/ answers, and `stop()` ends it again.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from ..support.errors import ConfigError
from .server import HOST, LocalServer

log = logging.getLogger(__name__)

LOG_FILE = "registry.log"


@dataclass(frozen=True)
class TokenAuth:
    """Bearer token auth: where clients get tokens, and whose signatures the registry trusts."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


class LocalRegistry(LocalServer):
    """One docker-registry process storing under `root`; a context manager that stops it."""

    name = "docker-registry"

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        htpasswd: Path | None = None,
        token: TokenAuth | None = None,
    ) -> None:
        if htpasswd and token:
            raise ConfigError("a local registry takes htpasswd or token auth, not both")
        super().__init__(port=port, log_path=Path(root) / LOG_FILE)
        self.root = Path(root)
        self.htpasswd = htpasswd
        self.token = token

    @property
    def host(self) -> str:
        """HOST:PORT, the registry part of an image name (`127.0.0.1:5000/aiship:tag`)."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def config(self) -> dict:
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.htpasswd:
            config["auth"] = {"htpasswd": {"realm": "aiship-local", "path": str(self.htpasswd)}}
        if self.token:
            config["auth"] = {
                "token": {
                    "realm": self.token.realm,
                    "service": self.token.service,
                    "issuer": self.token.issuer,
                    "rootcertbundle": str(self.token.rootcertbundle),
                }
            }
        return config

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    def command(self) -> list[str]:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise ConfigError("docker-registry is not installed: install Debian's docker-registry")
        return [binary, "serve", str(self.config_path)]

    def prepare(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        log.info("starting docker-registry on %s (storage: %s)", self.host, self.storage)

    def probe(self) -> bool:
        return requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401)


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """An htpasswd file with a bcrypt line per user (the only hash docker-registry accepts)."""
    import bcrypt

    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"
        for user, password in users.items()
    ]
    path.write_text("".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path
