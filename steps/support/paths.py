"""Where things are: the project being shipped, this checkout, the cache, the local stand-ins'
state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# What a project ships, relative to its root: the image's lock, the deploy manifests.
APP_LOCK_FILE = Path("requirements", "app.txt")
MANIFESTS_FOLDER = Path("manifests")
PROJECT_DIR_VARIABLE = "AISHIP_PROJECT_DIR"

# This checkout (or editable install): aiship's own project, and tools/ for the local stand-ins.
REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / MANIFESTS_FOLDER
APP_LOCK = REPO_ROOT / APP_LOCK_FILE
KUBE_TOOLS = REPO_ROOT / "tools" / "kube"


def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The repository being shipped: its Dockerfile, app/, requirements/app.txt, manifests/ and
    git history. $AISHIP_PROJECT_DIR, else the current folder, where CI runners start each step:
    the job's checkout, which for another repository using our actions is that repository, not
    the one these steps were installed from."""
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


def local_state_dir(*parts: str) -> Path:
    """The local stand-ins' pids, ports and data: the repository's git-ignored .local/ folder."""
    return REPO_ROOT.joinpath(".local", *parts)
