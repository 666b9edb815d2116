"""Where things are: the repository the steps run from, the cache, the local stand-ins' state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The checkout (or editable install) holding Dockerfile, app/, manifests/, requirements/, tools/.
REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "manifests"
APP_LOCK = REPO_ROOT / "requirements" / "app.txt"
KUBE_TOOLS = REPO_ROOT / "tools" / "kube"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """What the steps reuse between runs: $XDG_CACHE_HOME/aiship or ~/.cache/aiship (not created
    here)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aiship"


def local_state_dir(*parts: str) -> Path:
    """The local stand-ins' pids, ports and data: the repository's git-ignored .local/ folder."""
    return REPO_ROOT.joinpath(".local", *parts)
