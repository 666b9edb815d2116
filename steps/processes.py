"""Running the tools the steps drive (docker, kubectl, go, ...): output captured, time bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import Unavailable


def run(
    command: Sequence[str],
    *,
    what: str,
    timeout: float,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess:
    """Run `command` and return it finished, whatever its exit code; a command that outlives
    `timeout` is killed and becomes Unavailable("<what> did not finish within N s[: hint]")."""
    try:
        return subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(
            f"{what} did not finish within {timeout:g} s{': ' + hint if hint else ''}"
        ) from None


def last_line(text: str) -> str:
    """The last non-blank line of a command's output: usually the one that says what went wrong."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def gone(pid: int) -> bool:
    """True when the process has exited (reaping it when it is our child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def stop(pid: int, name: str, timeout: float, *, group: bool = False) -> None:
    """SIGTERM the process (or its whole process group), SIGKILL after `timeout` seconds."""
    from .waiting import wait_for

    kill = os.killpg if group else os.kill
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            kill(pid, sig)
        except ProcessLookupError:
            return
        with contextlib.suppress(Unavailable):
            wait_for(lambda: gone(pid) or None, timeout=wait, what=f"{name} to stop")
            return
    raise Unavailable(f"{name} (pid {pid}) did not stop: kill it by hand (kill -9 {pid})")
