"""What the image is built from: the lock, the wheelhouse cache, the base recipe, the engine."""

from __future__ import annotations

import re
import tomllib

import pytest

from steps import wheelhouse
from steps.cachedir import cache_dir
from steps.errors import Unavailable
from steps.image_build import ROOT, git_source
from steps.local import docker_engine
from steps.local.act import RUNNER_LOCK
from steps.local.base_image import BaseImageRecipe

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    return {canonical(m[1]): m[2] for line in text.splitlines() if (m := PIN.match(line))}


@pytest.mark.parametrize(
    ("lock", "extras"),
    [(wheelhouse.APP_LOCK, ()), (RUNNER_LOCK, ("steps",))],
    ids=["app", "runner"],
)
def test_lock_pins_every_project_dependency_at_its_version(lock, extras):
    """A pin changed in pyproject.toml without `uv pip compile` fails here, not in a build."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [
        *project["dependencies"],
        *(d for e in extras for d in project["optional-dependencies"][e]),
    ]
    wanted = {canonical(name): version for name, version in (PIN.match(d).groups() for d in deps)}

    assert wanted.items() <= lock_pins(lock.read_text()).items()


def test_lock_has_hashes_its_regeneration_command_and_no_training_tools():
    text = wheelhouse.APP_LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])

    assert "uv pip compile pyproject.toml --generate-hashes" in text.split("\n", 2)[1]
    assert all("--hash=sha256:" in entry for entry in entries if PIN.match(entry))
    assert not {"scikit-learn", "skl2onnx", "onnx", "pytest"} & lock_pins(text).keys()


def test_cache_dir_honours_xdg_cache_home(tmp_path):
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "aiship"


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


def test_base_image_cache_key_follows_suite_and_packages():
    recipe = BaseImageRecipe()

    assert recipe.key() == BaseImageRecipe(packages=tuple(reversed(recipe.packages))).key()
    assert recipe.key() != BaseImageRecipe(packages=(*recipe.packages, "curl")).key()
    assert recipe.key() != BaseImageRecipe(suite="trixie").key()


def test_source_label_never_carries_credentials(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "steps.image_build._git", lambda root, *args: "https://user:token@example.org/x.git"
    )

    assert git_source(tmp_path) == "https://example.org/x.git"


def test_without_an_engine_a_non_root_user_gets_one_clear_line(monkeypatch):
    monkeypatch.setattr(docker_engine, "engine_version", lambda timeout=10: None)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine.os, "geteuid", lambda: 1000)

    with pytest.raises(Unavailable) as raised:
        docker_engine.ensure_engine()

    assert "\n" not in str(raised.value)
    assert "only root can start one" in str(raised.value)
