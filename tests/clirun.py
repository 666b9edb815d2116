"""`python -m aiship ...` in a process of its own, as a CI job or a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.repo import REPO_ROOT

# Where a step would send its outputs when the tests themselves run in CI: never from a test.
CI_OUTPUT_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "TF_BUILD", "STEPS_OUTPUT_FILE")


def run_steps(
    *args: str,
    env: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = (),
    cwd: Path = REPO_ROOT,
    timeout: float = 120,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess:
    """Run the installed aiship CLI in CWD (the project it ships) and capture its output as text.

    The environment is the tests' own without the CI output variables and without any variable
    whose name starts with one of DROP (a credential or setting the test must not inherit); ENV
    is added last, so a test can set any of them on purpose.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in CI_OUTPUT_VARIABLES and not name.startswith(drop)
    }
    return subprocess.run(
        [sys.executable, "-m", "aiship", *args],
        cwd=cwd,
        env={**inherited, **(env or {})},
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
