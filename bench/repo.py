"""This repository's checkout: what the benchmarks read of aiship's own project (the sample
model's script, the manifests, the service source)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = REPO_ROOT / "manifests"
