"""aiship as a package another repository pins: a wheel built from this checkout, installed into
a fresh venv and run in a consumer's checkout that has an `app/` and a `steps/` of its own, as the
reusable workflows install it. It is one package, it runs with nothing of this checkout around
it, and it never imports the consumer's folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from aiship.clients.wheelhouse import ensure_wheelhouse
from tests.invocations import INHERITED, invocations
from tests.pipelines.ci_systems import job_checkout
from tests.repo import REPO_ROOT
from tests.system.act import RUNNER_LOCK
from tests.system.consumer import write_consumer

PACKAGED = ("pyproject.toml", "README.md", "src")  # what the wheel is built from
# The consumer's own packages, named as ours were: importing either is the defect under test.
CONSUMER_PACKAGES = ("app", "steps")


def project_version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy (the build writes into its source folder)."""
    source = tmp_path_factory.mktemp("source")
    for name in PACKAGED:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name)
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "wheel", *offline, "-w", wheels, source], check=True, timeout=300)
    (built,) = wheels.glob("aiship-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv holding the wheel. Its dependencies are this interpreter's, borrowed through
    a .pth line (no index to install them from here); that folder holds no aiship of its own."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True, timeout=120)
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "--python", python]
    # Nothing of the checkout on the path: an aiship.egg-info there reads as installed already.
    alone = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    install = [*pip, "install", "--no-deps", "--no-index", wheel]
    subprocess.run(install, check=True, timeout=300, env=alone)
    (site,) = root.glob("lib/python3*/site-packages")
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


@pytest.fixture(scope="module")
def locked_venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv with nothing borrowed: the steps' hash lock from its wheelhouse (no index:
    downloaded once into the cache, as the act runner's is), then the wheel with --no-deps. What
    the setup action installs, and what `pipx install` or `uv tool install` of a checkout or a
    tag leaves in the tool's own venv."""
    wheels = ensure_wheelhouse(RUNNER_LOCK)
    root = tmp_path_factory.mktemp("locked-venv")
    subprocess.run([sys.executable, "-m", "venv", root], check=True, timeout=120)
    pip = [root / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = ["--no-index", "--find-links", str(wheels)]
    alone = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PIP_FIND_LINKS")
    }
    for what in (["--require-hashes", "-r", RUNNER_LOCK], ["--no-deps", wheel]):
        subprocess.run([*pip, "install", *offline, *what], check=True, timeout=600, env=alone)
    return root


@pytest.fixture(scope="module")
def consumer(tmp_path_factory, trained_model_dir) -> Path:
    """Another team's checkout, set up, with packages named as ours were that fail on import."""
    folder = write_consumer(tmp_path_factory.mktemp("consumer"))
    job_checkout(folder, trained_model_dir, source=None)
    for name in CONSUMER_PACKAGES:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('the consumer\\'s own {name} package was imported')\n"
        )
    return folder


def run_in(venv: Path, consumer: Path, *command: str, env: dict[str, str] | None = None):
    """COMMAND (a program of the venv's bin/) in the consumer's checkout, with nothing of this
    checkout on the path and no setting inherited that a step reads."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(INHERITED) and name not in ("PYTHONPATH", "AISHIP_PROJECT_DIR")
    }
    return subprocess.run(
        [venv / "bin" / command[0], *command[1:]],
        cwd=consumer,
        env={**inherited, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_holds_one_package_and_the_data_it_reads(wheel):
    names = zipfile.ZipFile(wheel).namelist()

    assert {name.split("/")[0] for name in names} == {
        "aiship",
        f"aiship-{project_version()}.dist-info",
    }
    for data in ("app/openapi.json", "app/docs.html", "tools/kube/node/holder.sh"):
        assert f"aiship/{data}" in names, data
    assert (
        "aiship/tools/notation/go.mod" in names and "aiship/tools/kube/kubernetes/go.sum" in names
    )


def test_the_installed_script_runs_at_the_project_version_beside_the_consumers_packages(
    venv, consumer
):
    version = run_in(venv, consumer, "aiship", "--version")
    helped = run_in(venv, consumer, "aiship", "--help")
    as_module = run_in(venv, consumer, "python", "-m", "aiship", "--help")  # the folder is on path

    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"aiship {project_version()}"
    assert helped.returncode == 0 and helped.stdout.startswith("usage: aiship "), helped.stderr
    assert as_module.returncode == 0, as_module.stderr


def test_every_step_plans_from_the_installed_package(venv, consumer, tmp_path, trained_model_dir):
    """The package finds what it reads in the consumer's checkout (its Dockerfile, source, lock,
    manifests, certificate) and in itself (its tool pins), never in this checkout."""
    found = invocations(tmp_path, trained_model_dir, consumer, 1)

    for name, invocation in found.items():
        args = (*name.split(), *invocation.args, "--dry-run", "--json")
        done = run_in(venv, consumer, "aiship", *args, env=invocation.env)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert json.loads(done.stdout)["dry_run"] is True
    tools = run_in(venv, consumer, "aiship", "local", "tools", "notation", "--dry-run", "--json")
    assert tools.returncode == 0 and "notation" in json.loads(tools.stdout)["plan"], tools.stderr


def test_the_service_imports_from_the_installed_package(venv, consumer):
    probe = "import aiship.app, aiship.app.server, sys; print(aiship.app.__file__)"

    done = run_in(venv, consumer, "python", "-c", probe)

    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(venv)


def test_the_installed_script_fails_with_the_steps_one_line_error_and_exit_code(venv, consumer):
    image = "127.0.0.1:5000/app:main"
    done = run_in(venv, consumer, "aiship", "resolve-image", "--image", image, "--digest", "x")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --digest")


def test_the_cli_installs_from_the_lock_alone_into_a_fresh_venv(locked_venv, consumer):
    """Every dependency of aiship[steps] is in the steps' lock (pip check), and the installed
    command runs and completes in bash with nothing else on its path."""
    checked = run_in(locked_venv, consumer, "python", "-m", "pip", "check")
    helped = run_in(locked_venv, consumer, "aiship", "--help")
    completion = run_in(locked_venv, consumer, "aiship", "--print-completion", "bash")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert helped.returncode == 0 and helped.stdout.startswith("usage: aiship "), helped.stderr
    assert completion.returncode == 0, completion.stderr
    assert completion.stdout.rstrip().endswith("-F _shtab_aiship aiship")
