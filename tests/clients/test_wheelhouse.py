"""What the image is built from: the locks and the wheelhouse made from them."""

from __future__ import annotations

import re
import tomllib

import pytest

from aiship.clients import wheelhouse
from tests.repo import APP_LOCK, REPO_ROOT
from tests.system.act import RUNNER_LOCK

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    return {canonical(m[1]): m[2] for line in text.splitlines() if (m := PIN.match(line))}


LOCKS = REPO_ROOT / "requirements"


def extra_pins(extras: tuple[str, ...]) -> dict[str, str]:
    """What pyproject.toml pins for the base and EXTRAS (an extra naming aiship's own extras,
    as `dev` does, brings theirs)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    deps, todo = list(project["dependencies"]), list(extras)
    while todo:
        for dep in optional[todo.pop()]:
            if dep.startswith("aiship["):
                todo += dep[len("aiship[") : -1].split(",")
            else:
                deps.append(dep)
    named = [PIN.match(re.sub(r"\[.*?\]", "", dep)) for dep in deps]  # moto[server]==...
    assert all(named), f"pyproject.toml pins each dependency exactly: {deps}"
    return {canonical(pin[1]): pin[2] for pin in named if pin}


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        (APP_LOCK, ()),  # the image
        (RUNNER_LOCK, ("steps",)),  # CI's setup in both systems, and the act runner
        (LOCKS / "test.txt", ("train", "steps", "test")),  # tox's envs
        (LOCKS / "lint.txt", ("lint",)),
        (LOCKS / "dev.txt", ("dev",)),  # ./dev's venv, tox's bench env
        (LOCKS / "audit.txt", ("audit",)),  # pip-audit in GitHub's CI (audit.yml)
    ],
    ids=["app", "steps", "test", "lint", "dev", "audit"],
)
def test_lock_pins_every_project_dependency_at_its_version(lock, extras):
    """A pin changed in pyproject.toml without `uv pip compile` fails here, not in a build; every
    entry carries its hashes, so pip installs it in hash-checking mode."""
    text = lock.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])

    assert extra_pins(extras).items() <= lock_pins(text).items()
    assert all("--hash=sha256:" in entry for entry in entries if PIN.match(entry))
    assert f"--output-file=requirements/{lock.name}" in text.split("\n", 2)[1]


def test_lock_has_hashes_its_regeneration_command_and_no_training_tools():
    text = APP_LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])

    assert "uv pip compile pyproject.toml --generate-hashes" in text.split("\n", 2)[1]
    assert all("--hash=sha256:" in entry for entry in entries if PIN.match(entry))
    assert not {"scikit-learn", "skl2onnx", "onnx", "pytest"} & lock_pins(text).keys()


def test_wheelhouse_is_reused_once_made(tmp_path, monkeypatch):
    lock = tmp_path / "app.txt"
    lock.write_text("flask==3.1.3\n")
    made = tmp_path / "wheelhouse" / wheelhouse.wheelhouse_key(lock, wheelhouse.Platform())
    made.mkdir(parents=True)
    (made / wheelhouse.LOCK_NAME).write_text(lock.read_text())

    def no_download(*args):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(wheelhouse, "_pip_download", no_download)
    assert wheelhouse.ensure_wheelhouse(lock, cache=tmp_path) == made


def test_a_new_lock_gets_a_new_wheelhouse(tmp_path):
    lock = tmp_path / "app.txt"
    lock.write_text("flask==3.1.3\n")
    before = wheelhouse.wheelhouse_key(lock, wheelhouse.Platform())
    lock.write_text("flask==3.1.2\n")

    assert wheelhouse.wheelhouse_key(lock, wheelhouse.Platform()) != before


def test_platform_accepts_every_manylinux_that_bookworm_runs():
    args = wheelhouse.Platform().pip_args()
    platforms = {args[i + 1] for i, arg in enumerate(args) if arg == "--platform"}

    assert {"manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64"} <= platforms
    assert "manylinux_2_37_x86_64" not in platforms
