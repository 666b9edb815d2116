"""A server process of our own on 127.0.0.1: started in its own session, waited for, stopped.

The stand-ins (Azurite, docker-registry) differ only in how they are run and probed; the
lifecycle is this one.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import requests

from ..support.errors import Unavailable
from ..support.ports import free_port
from ..support.processes import last_line
from ..support.waiting import wait_for

HOST = "127.0.0.1"


class LocalServer:
    """One server process; a context manager that stops it. Subclasses give `name`, `command()`
    and `probe()`, and may `prepare()` files before the start."""

    name = "server"

    def __init__(self, *, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> bool:
        """True once the server answers (requests errors count as not yet)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Write what the server needs before it starts (folders, configuration)."""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs (it leads its own process group)."""
        return self._process.pid if self.running else None

    def start(self, timeout: float = 30.0):
        if self.running:  # a second process would lose the first one's handle, and leak it
            return self
        command = self.command()
        self.prepare()
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path or "/dev/null", "ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(
                self._answers,
                timeout=timeout,
                what=f"{self.name} did not answer on {HOST}:{self.port}",
            )
        except Unavailable:
            self.stop()
            raise
        return self

    def _answers(self) -> bool | None:
        if self._process is not None and self._process.poll() is not None:
            said = self.log_path.read_text(errors="replace") if self.log_path else ""
            raise Unavailable(
                f"{self.name} exited with code {self._process.returncode} at "
                f"start: {last_line(said)}"
            )
        try:
            return True if self.probe() else None
        except requests.RequestException:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server saves what it must), SIGKILL if it does not exit in time."""
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

    def __enter__(self):
        return self.start() if self._process is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()
