"""Debian's `docker-registry` (distribution v2.8) on 127.0.0.1: filesystem storage, optional auth.

Auth is none, htpasswd (Basic) or token (Bearer: the registry checks JWTs signed by a key whose
certificate is in `rootcertbundle`, as a real token service issues them). The registry logs to
ROOT/registry.log; `start()` waits, bounded, until /v2/ answers, and `stop()` ends it again.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from ..dockercli import last_line
from ..errors import ConfigError, Unavailable
from ..waiting import wait_for

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_FILE = "registry.log"


@dataclass(frozen=True)
class TokenAuth:
    """Bearer token auth: where clients get tokens, and whose signatures the registry trusts."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


class LocalRegistry:
    """One docker-registry process storing under `root`; a context manager that stops it."""

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
        self.root = Path(root)
        self.port = port or free_port()
        self.htpasswd = htpasswd
        self.token = token
        self._process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """HOST:PORT, the registry part of an image name (`127.0.0.1:5000/aiship:tag`)."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int | None:
        """The process id while it runs (it leads its own process group)."""
        running = self._process is not None and self._process.poll() is None
        return self._process.pid if running else None

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

    def start(self, timeout: float = 15.0) -> LocalRegistry:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise ConfigError("docker-registry is not installed: install Debian's docker-registry")
        self.storage.mkdir(parents=True, exist_ok=True)
        config_path = self.root / "config.yml"
        config_path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        log_path = self.root / LOG_FILE
        log.info("starting docker-registry on %s (storage: %s)", self.host, self.storage)
        with open(log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [binary, "serve", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(
                self._answers, timeout=timeout, what=f"docker-registry did not answer on {self.url}"
            )
        except Unavailable:
            self.stop()
            raise
        return self

    def _answers(self) -> bool | None:
        if self._process is not None and self._process.poll() is not None:
            text = (self.root / LOG_FILE).read_text(errors="replace")
            raise Unavailable(
                f"docker-registry exited with code {self._process.returncode}: {last_line(text)}"
            )
        try:
            response = requests.get(f"{self.url}/v2/", timeout=1)
        except requests.ConnectionError:
            return None
        return True if response.status_code in (200, 401) else None

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> LocalRegistry:
        return self.start() if self._process is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()


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


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
