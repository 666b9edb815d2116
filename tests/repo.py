"""This repository's checkout: what the tests read of aiship's own project (its pipelines,
manifests, README, sample model). The package itself never looks here."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = REPO_ROOT / "manifests"
APP_LOCK = REPO_ROOT / "requirements" / "app.txt"
