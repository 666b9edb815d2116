"""Build the local Kubernetes cluster from the Go modules pinned under tools/kube/.

kube-apiserver, kube-controller-manager, kube-scheduler and kubelet (k8s.io/kubernetes), etcd
(go.etcd.io/etcd/server/v3), kwok and kwokctl (sigs.k8s.io/kwok): each Go module under tools/kube/
pins one project. tools/kube/node holds our own small programs for the node (the pod
sandbox's `pause`), with no dependencies. The binaries land in CACHE/kube-<versions>-<digest>/bin,
keyed by the pinned versions and a digest of the pin files and build flags, so a second run costs
nothing. Every `go build` runs under `nice -n 19`: the build only takes CPU nobody else wants.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import ConfigError, StepError
from ..support.paths import KUBE_TOOLS, cache_dir
from ..support.processes import last_line, run

log = logging.getLogger(__name__)

KUBERNETES, ETCD, KWOK = "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok"
FOLDERS = {KUBERNETES: "kubernetes", ETCD: "etcd", KWOK: "kwok"}  # pin -> its module folder
NODE = "node"  # the module folder of our own programs
BUILD_FLAGS = ("-trimpath", "-p", "2")
BUILD_TIMEOUT = 3600.0  # per binary; a cold kube-apiserver is the longest


@dataclass(frozen=True)
class Binary:
    """One command to build: its file name, Go package, and the `-X` settings it wants."""

    name: str
    package: str
    stamps: tuple[str, ...] = ()
    static: bool = False  # no cgo: it runs inside an image with no libc


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
    versions = {}
    for pin, folder in FOLDERS.items():
        go_mod = tools_dir / folder / "go.mod"
        try:
            text = go_mod.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {go_mod}: {exc.strerror}; restore it (git)") from None
        found = re.search(rf"^\s*(?:require\s+)?{re.escape(pin)}\s+(v\S+)", text, re.MULTILINE)
        if not found:
            raise ConfigError(f"{go_mod} does not require {pin}: add `require {pin} vX.Y.Z`")
        versions[pin] = found.group(1)
    return versions


def cache_key(versions: Mapping[str, str], tools_dir: Path = KUBE_TOOLS) -> str:
    """kube-<k8s>-etcd-<etcd>-kwok-<kwok>-<digest of the pin files and build flags>."""
    digest = hashlib.sha256()
    for folder, builds in binaries(versions).items():
        for name in ("go.mod", "go.sum"):
            with contextlib.suppress(FileNotFoundError):  # a module with no dependencies has none
                digest.update((tools_dir / folder / name).read_bytes())
        for binary in builds:
            digest.update(repr((binary, BUILD_FLAGS)).encode())
    return (
        f"kube-{versions[KUBERNETES]}-etcd-{versions[ETCD]}-kwok-{versions[KWOK]}"
        f"-{digest.hexdigest()[:12]}"
    )


def ensure_binaries(cache: Path | None = None, tools_dir: Path = KUBE_TOOLS) -> KubeBinaries:
    """The built binaries, building them first when this cache does not hold them yet."""
    versions = pinned_versions(tools_dir)
    built = KubeBinaries((cache or cache_dir()) / cache_key(versions, tools_dir), versions)
    wanted = binaries(versions)
    names = [binary.name for builds in wanted.values() for binary in builds]
    if all(os.access(built.path(name), os.X_OK) for name in names):
        return built
    go = go_path()
    built.root.mkdir(parents=True, exist_ok=True)
    for stale in built.root.glob(".work-*"):  # left by a run that was killed, not a running one
        if not Path(f"/proc/{stale.name.removeprefix('.work-')}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    work = built.root / f".work-{os.getpid()}"
    try:
        started = time.monotonic()
        for folder, builds in wanted.items():
            for binary in builds:
                build(go, tools_dir / folder, binary, work / "bin")
        log.info("built %s in %.0f s", ", ".join(names), time.monotonic() - started)
        _publish(work / "bin", built.bin_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return built


def go_path() -> str:
    go = shutil.which("go")
    if go is None:
        raise ConfigError("go is not installed: install Go 1.26 or newer (./dev setup), then retry")
    return go


def build(go: str, module_dir: Path, binary: Binary, out_dir: Path) -> Path:
    """`nice -n 19 go build` of one binary into OUT_DIR; a failure names the binary and why."""
    out = out_dir / binary.name
    ldflags = " ".join(["-s", "-w", *(f"-X {stamp}" for stamp in binary.stamps)])
    command = ["nice", "-n", "19", go, "build", *BUILD_FLAGS, "-ldflags", ldflags, "-o", str(out)]
    log.info("go build %s (niced; a cold build takes a while)", binary.package)
    env = {**os.environ, "CGO_ENABLED": "0"} if binary.static else None
    _go([*command, binary.package], module_dir, what=f"go build {binary.name}", env=env)
    return out


def _go(
    command: list[str], module_dir: Path, what: str, env: Mapping[str, str] | None = None
) -> str:
    done = run(
        command,
        what=what,
        timeout=BUILD_TIMEOUT,
        cwd=module_dir,
        env=env,
        hint="retry when the machine is less busy (Go's build cache keeps the work done)",
    )
    if done.returncode != 0:
        raise StepError(f"{what} failed (exit {done.returncode}): {last_line(done.stderr)}")
    return done.stdout


def _publish(work: Path, final: Path) -> None:
    """Move a finished folder into place; another run that finished first is as good."""
    try:
        os.replace(work, final)
    except OSError:
        if not final.is_dir():
            raise
