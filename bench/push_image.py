"""Image push: seconds and bytes for a first push, a re-push, a code-only and a model-only change.

`python -m bench.push_image` builds the real image (steps.image_build, on the local base image),
pushes it with steps.push_image into Debian's docker-registry on 127.0.0.1, and counts the bytes
the registry stored for each push (new blobs under its storage: layers, config, manifest).
Needs a Docker engine (started here as root when none answers) and the local base image.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiship.app.card import read_card, write_card
from aiship.clients.docker import docker
from aiship.clients.registry import ImageRef, RegistryLogin
from aiship.commands.build_image import ImageBuild, build_image, copy_project
from aiship.commands.push_image import push_image
from aiship.local.base_image import LOCAL_BASE_IMAGE, ensure_base_image
from aiship.local.docker_engine import ensure_engine
from aiship.local.registry_server import LocalRegistry
from aiship.support import logs
from bench.repo import REPO_ROOT

SERVICE = Path("src", "aiship", "app")  # the service's code, the image's last layer
REPOSITORY = "aiship/app"


@dataclass(frozen=True)
class Row:
    case: str
    build_seconds: float
    push_seconds: float
    bytes_pushed: int
    layers_pushed: int
    layers_present: int


def stored_blobs(registry: LocalRegistry) -> dict[Path, int]:
    return {path: path.stat().st_size for path in registry.storage.rglob("blobs/sha256/*/*/data")}


def measure(
    case: str, registry: LocalRegistry, tag: str, ids: list[str], build: tuple[Path, Path] | None
) -> Row:
    """Build (when `build` is (model_dir, source); its id added to IDS) and push REPOSITORY:TAG."""
    image = ImageRef(registry.host, REPOSITORY, tag)
    started = time.perf_counter()
    if build:
        model_dir, source = build
        request = ImageBuild(model_dir=model_dir, base_image=LOCAL_BASE_IMAGE, tags=(str(image),))
        ids.append(build_image(request, root=source).image_id)
    built = time.perf_counter()
    before = stored_blobs(registry)
    pushed = push_image(RegistryLogin(registry.host), image)
    seconds = time.perf_counter() - built
    after = stored_blobs(registry)
    new_bytes = sum(size for path, size in after.items() if path not in before)
    return Row(
        case,
        built - started,
        seconds,
        new_bytes,
        pushed.layers_pushed,
        pushed.layers_present,
    )


def copy_source(folder: Path) -> Path:
    """What the image is built from, so a change touches a copy, never the repository."""
    return copy_project(REPO_ROOT, folder)


def train_model(folder: Path) -> Path:
    sys.path.insert(0, str(REPO_ROOT / "model"))
    import train  # model/train.py, the data scientist's script

    train.write_model(folder, name="digits", version="1.0.0")
    return folder


def run(work: Path) -> list[Row]:
    source = copy_source(work / "src")
    model_dir = train_model(work / "model")
    rows: list[Row] = []
    ids: list[str] = []
    with LocalRegistry(work / "registry") as registry:
        try:
            inputs = (model_dir, source)
            rows.append(measure("first push", registry, "first", ids, inputs))
            rows.append(measure("re-push of the same image", registry, "first", ids, None))
            with open(source / SERVICE / "__init__.py", "a") as f:
                f.write("# a code-only change\n")
            rows.append(measure("code-only change: rebuild + push", registry, "code", ids, inputs))
            write_card(model_dir, read_card(model_dir).with_version("1.0.1"))
            rows.append(
                measure("model-only change: rebuild + push", registry, "model", ids, inputs)
            )
        finally:
            # By id: the tags and the digests the pushes recorded; --no-prune keeps the cache.
            if ids:
                docker(["rmi", "--force", "--no-prune", *ids], timeout=60, check=False)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| case | build s | push s | bytes pushed | layers pushed | layers already there |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.case} | {row.build_seconds:.1f} | {row.push_seconds:.2f} | "
            f"{row.bytes_pushed:,} | {row.layers_pushed} | {row.layers_present} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push_image", description=__doc__)
    parser.parse_args(argv)
    logs.configure()
    engine = ensure_engine(timeout=60)
    try:
        ensure_base_image()
        with tempfile.TemporaryDirectory(prefix="aiship-bench-push-") as work:
            rows = run(Path(work))
    finally:
        engine.stop()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
