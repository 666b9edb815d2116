"""Where things are: the project being shipped, aiship's own package data, the cache, the local
stand-ins' state. Nothing here looks at the checkout aiship was installed from: an installed
wheel has none."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# What a project ships, relative to its root: the image's lock, the deploy manifests.
APP_LOCK_FILE = Path("requirements", "app.txt")
MANIFESTS_FOLDER = Path("manifests")
PROJECT_DIR_VARIABLE = "AISHIP_PROJECT_DIR"

# Package data: the pinned Go modules of the tools some steps build (notation, the local cluster).
TOOLS = Path(__file__).resolve().parent.parent / "tools"
KUBE_TOOLS = TOOLS / "kube"
NOTATION_TOOLS = TOOLS / "notation"


def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The repository being shipped: its Dockerfile, service source, requirements/app.txt,
    manifests/ and git history. $AISHIP_PROJECT_DIR, else the current folder, where CI runners
    start each step: the job's checkout, which for another repository using our actions is that
    repository, not the one these steps were installed from."""
    env = os.environ if env is None else env
    return Path(env.get(PROJECT_DIR_VARIABLE) or ".").resolve()


def project_manifests(env: Mapping[str, str] | None = None) -> Path:
    """The project's manifests/: base and overlays, the canary's analysis, the quality gate."""
    return project_dir(env) / MANIFESTS_FOLDER


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """What the steps reuse between runs: $XDG_CACHE_HOME/aiship or ~/.cache/aiship (not created
    here)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aiship"


def local_state_dir(*parts: str, env: Mapping[str, str] | None = None) -> Path:
    """The local stand-ins' pids, ports and data: the shipped project's git-ignored .local/
    folder, where `./dev run` and `local down` look for them."""
    return project_dir(env).joinpath(".local", *parts)
