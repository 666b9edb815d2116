"""A venv of its own for each peer, so their dependencies never meet ours or each other's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from ..harness import cache_dir
from . import ISOLATED

# The peers run the model with the onnxruntime and numpy we run.
SHARED = ("onnxruntime", "numpy")


def ours(*names: str) -> list[str]:
    """Pins of NAMES at the versions installed here."""
    return [f"{name}=={version(name)}" for name in names]


def pinned_venv(name: str, release: str, pins: Sequence[str]) -> Path:
    """The venv `bench-NAME-RELEASE` in the cache dir with PINS, onnxruntime and numpy installed;
    made on first use, and again when the pins change."""
    path = cache_dir() / f"bench-{name}-{release}"
    wanted = "\n".join([*pins, *ours(*SHARED)]) + "\n"
    done = path / ".installed"
    if done.exists() and done.read_text() == wanted:
        return path
    print(f"installing {name} {release} into {path}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", *wanted.split()],
        check=True,
        env=os.environ | ISOLATED,
        timeout=1800,
    )
    done.write_text(wanted)
    return path
