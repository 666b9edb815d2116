"""The official V2 clients, tritonclient and KServe's, in a venv of their own: they pin
dependencies (grpcio, protobuf, fastapi...) that clash with ours. The venv is made on first use
from requirements.txt (every version pinned; regenerate it with the command in its header after
changing requirements.in) under the cache dir, keyed by the lock's digest: about 80 s cold here."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from aiship.support.paths import cache_dir

HERE = Path(__file__).parent
LOCK = HERE / "requirements.txt"


def venv() -> Path:
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    path = cache_dir() / f"v2-clients-{digest}"
    done = path / ".installed"
    if not done.exists():
        print(f"installing the V2 clients of {LOCK} into {path} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
        subprocess.run([*pip, "-r", str(LOCK)], check=True, timeout=900)
        done.touch()
    return path


def drive(client: str, job: dict) -> dict:
    """What CLIENT ("triton" or "kserve") saw doing JOB (see drive.py)."""
    run = subprocess.run(
        [str(venv() / "bin" / "python"), str(HERE / "drive.py"), client],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        raise RuntimeError(f"{client} client failed (exit {run.returncode}):\n{run.stderr}")
    return json.loads(run.stdout)
