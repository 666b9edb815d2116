"""The steps as a package another repository pins: a wheel built from this checkout, installed
where nothing else of the checkout is, runs as `aiship` at pyproject's version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.repo import REPO_ROOT

PACKAGED = ("pyproject.toml", "README.md", "src")  # what the wheel is built from


def project_version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy (the build writes into its source folder), installed
    without dependencies (this interpreter has them) into a folder of its own: its bin/aiship."""
    source = tmp_path_factory.mktemp("source")
    for name in PACKAGED:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name)
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "wheel", *offline, "-w", wheels, source], check=True, timeout=300)
    (wheel,) = wheels.glob("aiship-*.whl")
    target = tmp_path_factory.mktemp("target")
    subprocess.run([*pip, "install", *offline, "--target", target, wheel], check=True, timeout=300)
    return target


def aiship(target: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed script, its package first on the path (not this checkout's)."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("GITHUB_OUTPUT", None)
    return subprocess.run(
        [target / "bin" / "aiship", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_installs_the_aiship_script_at_the_project_version(installed, tmp_path):
    done = aiship(installed, "--version", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"aiship {project_version()}"


def test_the_installed_script_runs_a_step_from_its_own_package(installed, tmp_path):
    store = tmp_path / "store"
    store.mkdir()

    done = aiship(
        installed,
        "fetch-model",
        "--store",
        str(store),
        "--name",
        "digits",
        "--dest",
        "model",
        "--dry-run",
        "--json",
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert "digits" in json.loads(done.stdout)["plan"]
    where = aiship(installed, "--help", cwd=tmp_path)
    assert where.stdout.startswith("usage: aiship ")


def test_the_installed_script_fails_with_the_steps_one_line_error_and_exit_code(
    installed, tmp_path
):
    image = "127.0.0.1:5000/app:main"
    done = aiship(installed, "resolve-image", "--image", image, "--digest", "x", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --digest")
