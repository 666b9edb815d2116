"""The control plane's build: versions come from the go.mod pins, the cache key follows every pin
file, and a complete cache folder means no build at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aiship.local import kube_build
from aiship.local.kube_build import (
    KUBERNETES,
    binaries,
    cache_key,
    ensure_binaries,
    kubernetes_stamps,
    pinned_versions,
)
from aiship.support.errors import ConfigError
from aiship.support.paths import KUBE_TOOLS


@pytest.fixture
def tools(tmp_path) -> Path:
    """A copy of src/aiship/tools/kube that a test may change."""
    copy = tmp_path / "tools"
    shutil.copytree(KUBE_TOOLS, copy, ignore=shutil.ignore_patterns("*.md"))
    return copy


def test_versions_come_from_the_go_mod_pins(tools):
    versions = pinned_versions(tools)
    for pin, folder in kube_build.FOLDERS.items():
        assert f"{pin} {versions[pin]}" in (tools / folder / "go.mod").read_text()
    # Every staging module is replaced by the version matching k8s.io/kubernetes.
    staging = versions[KUBERNETES].replace("v1.", "v0.", 1)
    kubernetes_mod = (tools / "kubernetes" / "go.mod").read_text()
    replaced = [line for line in kubernetes_mod.splitlines() if "=>" in line]
    assert "k8s.io/api => k8s.io/api " + staging in kubernetes_mod
    assert len(replaced) > 20
    assert all(line.endswith(" " + staging) for line in replaced)


def test_a_missing_pin_names_the_file(tools):
    go_mod = tools / "etcd" / "go.mod"
    go_mod.write_text(go_mod.read_text().replace("go.etcd.io/etcd/server/v3 v", "example.org/x v"))
    with pytest.raises(
        ConfigError, match=r"etcd/go.mod does not require go.etcd.io/etcd/server/v3"
    ):
        pinned_versions(tools)


def test_the_cache_key_names_the_versions_and_follows_every_pin_file(tools):
    versions = pinned_versions(tools)
    key = cache_key(versions, tools)
    assert key.startswith(
        f"kube-{versions[KUBERNETES]}-etcd-{versions[kube_build.ETCD]}"
        f"-kwok-{versions[kube_build.KWOK]}-"
    )
    assert cache_key(versions, tools) == key
    go_sum = tools / "kwok" / "go.sum"
    go_sum.write_text(go_sum.read_text() + "example.org/x v1.0.0 h1:AAAA=\n")
    assert cache_key(versions, tools) != key


def test_binaries_carry_their_version_stamps():
    versions = pinned_versions()
    built = binaries(versions)
    names = {b.name for builds in built.values() for b in builds}
    assert names == {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "etcd",
        "kwok",
        "kwokctl",
        "pause",
    }
    assert [b.name for builds in built.values() for b in builds if b.static] == ["pause"]
    assert "k8s.io/component-base/version.gitVersion=v1.37.2" in kubernetes_stamps("v1.37.2")
    assert "k8s.io/component-base/version.gitMinor=37" in kubernetes_stamps("v1.37.2")
    kwokctl = next(b for b in built["kwok"] if b.name == "kwokctl")
    assert f"sigs.k8s.io/kwok/pkg/consts.Version={versions[kube_build.KWOK]}" in kwokctl.stamps


def test_a_complete_cache_folder_is_reused_without_go(tmp_path, monkeypatch):
    versions = pinned_versions()
    root = tmp_path / cache_key(versions)
    (root / "stages").mkdir(parents=True)
    (root / "bin").mkdir()
    for builds in binaries(versions).values():
        for binary in builds:
            (root / "bin" / binary.name).write_text("#!/bin/sh\n")
            (root / "bin" / binary.name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))

    built = ensure_binaries(cache=tmp_path)
    assert built.bin_dir == root / "bin"
    assert built.path("kwokctl").read_text() == "#!/bin/sh\n"


def test_an_incomplete_cache_folder_needs_go(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))
    with pytest.raises(ConfigError, match="go is not installed"):
        ensure_binaries(cache=tmp_path)
