"""Running the tools the steps drive (docker, kubectl, go, ...): output captured, time bounded."""

from __future__ import annotations

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
