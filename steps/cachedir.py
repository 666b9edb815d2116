"""Where the steps keep what they reuse between runs: $XDG_CACHE_HOME/aiship or ~/.cache/aiship."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The aiship cache folder (not created here)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aiship"
