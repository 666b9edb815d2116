"""Build the local Kubernetes cluster from the Go modules pinned under tools/kube/.

kube-apiserver, kube-controller-manager, kube-scheduler and kubelet (k8s.io/kubernetes), etcd
(go.etcd.io/etcd/server/v3), kwok and kwokctl (sigs.k8s.io/kwok): each Go module under tools/kube/
pins one project. tools/kube/node holds our own small programs for the node (the pod
sandbox's `pause`), with no dependencies. clients/go.py builds them, niced, into
CACHE/kube-<versions>-<digest>/bin, keyed by the pinned versions and a digest of the pin files and
build flags, so a second run costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..clients.go import Binary, ensure_built, pinned_version, pins_digest
from ..support.paths import KUBE_TOOLS, cache_dir

KUBERNETES, ETCD, KWOK = "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok"
FOLDERS = {KUBERNETES: "kubernetes", ETCD: "etcd", KWOK: "kwok"}  # pin -> its module folder
NODE = "node"  # the module folder of our own programs


@dataclass(frozen=True)
class KubeBinaries:
    """The built binaries, and which versions they are."""

    root: Path
    versions: Mapping[str, str]

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    def outputs(self) -> dict[str, str]:
        versions = {f"{FOLDERS[pin]}_version": version for pin, version in self.versions.items()}
        return {"kube_bin_dir": str(self.bin_dir), **versions}


def kubernetes_stamps(version: str) -> tuple[str, ...]:
    """What `kube-apiserver --version` reports, as k8s' hack/lib/version.sh would stamp it."""
    major, minor = version.removeprefix("v").split(".")[:2]
    settings = {"gitVersion": version, "gitMajor": major, "gitMinor": minor}
    settings["gitTreeState"] = "clean"
    return tuple(
        f"{package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in settings.items()
    )


def binaries(versions: Mapping[str, str]) -> dict[str, tuple[Binary, ...]]:
    """Module folder -> the binaries it builds; `versions` gives the version stamps."""
    kube = kubernetes_stamps(versions[KUBERNETES])
    kwok = (
        f"sigs.k8s.io/kwok/pkg/consts.Version={versions[KWOK]}",
        f"sigs.k8s.io/kwok/pkg/consts.KubeVersion={versions[KUBERNETES].removeprefix('v')}",
    )
    components = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
    return {
        "kubernetes": tuple(Binary(n, f"k8s.io/kubernetes/cmd/{n}", kube) for n in components),
        "etcd": (Binary("etcd", ETCD),),
        "kwok": tuple(Binary(n, f"sigs.k8s.io/kwok/cmd/{n}", kwok) for n in ("kwok", "kwokctl")),
        NODE: (Binary("pause", "./pause", static=True),),
    }


def pinned_versions(tools_dir: Path = KUBE_TOOLS) -> dict[str, str]:
    """Each pinned project's version, read from the `require` line of its go.mod."""
    return {
        pin: pinned_version(tools_dir / folder / "go.mod", pin) for pin, folder in FOLDERS.items()
    }


def builds(
    versions: Mapping[str, str], tools_dir: Path = KUBE_TOOLS
) -> dict[Path, tuple[Binary, ...]]:
    """Module folder (a path) -> the binaries it builds."""
    return {tools_dir / folder: wanted for folder, wanted in binaries(versions).items()}


def cache_key(versions: Mapping[str, str], tools_dir: Path = KUBE_TOOLS) -> str:
    """kube-<k8s>-etcd-<etcd>-kwok-<kwok>-<digest of the pin files and build flags>."""
    return (
        f"kube-{versions[KUBERNETES]}-etcd-{versions[ETCD]}-kwok-{versions[KWOK]}"
        f"-{pins_digest(builds(versions, tools_dir))}"
    )


def ensure_binaries(cache: Path | None = None, tools_dir: Path = KUBE_TOOLS) -> KubeBinaries:
    """The built binaries, building them first when this cache does not hold them yet."""
    versions = pinned_versions(tools_dir)
    built = KubeBinaries((cache or cache_dir()) / cache_key(versions, tools_dir), versions)
    ensure_built(built.root, builds(versions, tools_dir))
    return built
