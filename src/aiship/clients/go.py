"""The Go toolchain: build pinned Go programs from the package's own modules under tools/ (package
data), cached by what they pin.

Each module folder (tools/kube/kubernetes, tools/notation, ...) is a Go module whose go.mod
requires the project and lists its commands as `tool` lines; go.sum pins every dependency. The
binaries land in CACHE/<name>-<versions>-<digest>/bin, the digest covering the pin files and the
build flags, so a second run costs nothing and a pin change builds anew. Every `go build` runs
under `nice -n 19`: the build only takes CPU nobody else wants.

`aiship local tools` builds them when the cache lacks them: notation (the signing tool, for CI
too) here, the local Kubernetes through local/kube_build.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import ConfigError, StepError
from ..support.paths import NOTATION_TOOLS, cache_dir
from ..support.processes import last_line, run

log = logging.getLogger(__name__)

BUILD_FLAGS = ("-trimpath", "-p", "2")
BUILD_TIMEOUT = 3600.0  # per binary; a cold kube-apiserver is the longest

NOTATION = "github.com/notaryproject/notation"


@dataclass(frozen=True)
class Binary:
    """One command to build: its file name, Go package, and the `-X` settings it wants."""

    name: str
    package: str
    stamps: tuple[str, ...] = ()
    static: bool = False  # no cgo: it runs inside an image with no libc


# Module folder -> the binaries built in it.
Builds = Mapping[Path, Sequence[Binary]]


def pinned_version(go_mod: Path, module: str) -> str:
    """The version of `module` that go_mod requires."""
    try:
        text = go_mod.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {go_mod}: {exc.strerror}; restore it (git)") from None
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.MULTILINE)
    if not found:
        raise ConfigError(f"{go_mod} does not require {module}: add `require {module} vX.Y.Z`")
    return found.group(1)


def pins_digest(builds: Builds) -> str:
    """12 hex digits of the pin files (go.mod, go.sum) and of how each binary is built."""
    digest = hashlib.sha256()
    for module_dir, binaries in builds.items():
        for name in ("go.mod", "go.sum"):
            with contextlib.suppress(FileNotFoundError):  # a module with no dependencies has none
                digest.update((module_dir / name).read_bytes())
        for binary in binaries:
            digest.update(repr((binary, BUILD_FLAGS)).encode())
    return digest.hexdigest()[:12]


def ensure_built(root: Path, builds: Builds) -> Path:
    """ROOT/bin holding every binary of `builds`, built first when any is missing there."""
    bin_dir = root / "bin"
    names = [binary.name for binaries in builds.values() for binary in binaries]
    if all(os.access(bin_dir / name, os.X_OK) for name in names):
        return bin_dir
    go = go_path()
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".work-*"):  # left by a run that was killed, not a running one
        if not Path(f"/proc/{stale.name.removeprefix('.work-')}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    work = root / f".work-{os.getpid()}"
    try:
        started = time.monotonic()
        for module_dir, binaries in builds.items():
            for binary in binaries:
                build(go, module_dir, binary, work / "bin")
        log.info("built %s in %.0f s", ", ".join(names), time.monotonic() - started)
        _publish(work / "bin", bin_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bin_dir


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
    what = f"go build {binary.name}"
    done = run(
        [*command, binary.package],
        what=what,
        timeout=BUILD_TIMEOUT,
        cwd=module_dir,
        env=env,
        hint="retry when the machine is less busy (Go's build cache keeps the work done)",
    )
    if done.returncode != 0:
        raise StepError(f"{what} failed (exit {done.returncode}): {last_line(done.stderr)}")
    return out


def _publish(work: Path, final: Path) -> None:
    """Move a finished folder into place; another run that finished first is as good."""
    try:
        os.replace(work, final)
    except OSError:
        if not final.is_dir():
            raise


# --- notation, the signing tool ---------------------------------------------------------------


def notation_builds(tools_dir: Path = NOTATION_TOOLS) -> tuple[str, Builds]:
    """notation's pinned version, and its one binary. The stamp is what notation's Makefile
    sets for a tagged release (an empty BuildMetadata): `notation version` says the bare
    version."""
    version = pinned_version(tools_dir / "go.mod", NOTATION)
    stamps = (f"{NOTATION}/internal/version.BuildMetadata=",)
    return version, {tools_dir: (Binary("notation", f"{NOTATION}/cmd/notation", stamps),)}


def notation_root(cache: Path | None = None, tools_dir: Path = NOTATION_TOOLS) -> Path:
    """Where the pinned notation is (or would be) built: CACHE/notation-<version>-<digest>."""
    version, builds = notation_builds(tools_dir)
    return (cache or cache_dir()) / f"notation-{version}-{pins_digest(builds)}"


def ensure_notation(cache: Path | None = None, tools_dir: Path = NOTATION_TOOLS) -> Path:
    """The pinned notation binary, built first when the cache does not hold it."""
    _, builds = notation_builds(tools_dir)
    return ensure_built(notation_root(cache, tools_dir), builds) / "notation"
