"""Running the tools the steps drive (docker, kubectl, go, ...): output captured, time bounded.

Every command the steps run to completion goes through `run` (or `stream`, to see its lines as
they come): a tool that is not installed or outlives its time becomes the one-line step error.
Long-lived servers (dockerd, Azurite, a port-forward) are started with Popen by their owners, or
with `spawn` when another process must find them again by a pid file, and stopped with `stop`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import ConfigError, Unavailable
from .waiting import wait_for


def run(
    command: Sequence[str],
    *,
    what: str,
    timeout: float,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run `command` and return it finished, whatever its exit code; a command that outlives
    `timeout` is killed and becomes Unavailable("<what> did not finish within N s[: hint]")."""
    _check_installed(command)
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
        raise Unavailable(_overdue(what, timeout, hint)) from None


def stream(
    command: Sequence[str],
    *,
    what: str,
    timeout: float,
    on_line: Callable[[str], None],
    hint: str = "",
) -> tuple[int, str]:
    """Run `command`, handing each line of its output (stdout and stderr) to `on_line` as it
    comes; (exit code, output). Time is bounded as in `run`."""
    _check_installed(command)
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines: list[str] = []
    try:
        for line in process.stdout or ():  # a pipe (stdout=PIPE): never None
            lines.append(line)
            on_line(line.rstrip())
        process.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise Unavailable(_overdue(what, timeout, hint))
    return process.returncode, "".join(lines)


def _overdue(what: str, timeout: float, hint: str) -> str:
    return f"{what} did not finish within {timeout:g} s{': ' + hint if hint else ''}"


def _check_installed(command: Sequence[str]) -> None:
    if shutil.which(command[0]) is None:
        raise ConfigError(f"{command[0]} is not installed (not on PATH): run ./dev setup")


def last_line(text: str) -> str:
    """The last non-blank line of a command's output: usually the one that says what went wrong."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def spawn(
    command: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-lived `command` in a session of its own (a Ctrl-C meant for us does not reach
    it), its output appended to `log_path`, its pid written to `pid_path`."""
    _check_installed(command)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    pid_path.write_text(f"{process.pid}\n", encoding="utf-8")
    return process


def read_pid(pid_path: Path) -> int | None:
    """The pid in `pid_path` when that process still runs, else None."""
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    return None if gone(pid) else pid


def stop_pid_file(pid_path: Path, name: str, timeout: float) -> None:
    """Stop the process `pid_path` names (SIGTERM, then SIGKILL), then remove the file."""
    pid = read_pid(pid_path)
    if pid is not None:
        stop(pid, name, timeout=timeout)
    pid_path.unlink(missing_ok=True)


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
