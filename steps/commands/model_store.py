"""`publish-model` and `fetch-model`: model versions in a store, as NAME/VERSION/model.{onnx,json}.

Versions are immutable (conditional creates), model.onnx goes up before model.json, and readers
see only versions that have a model.json. A fetch verifies the sha256 of what it received.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.card import (
    CARD_FILE,
    MODEL_FILE,
    NAME_PATTERN,
    CardError,
    ModelCard,
    check_version,
    file_sha256,
    read_card,
    verify_model_dir,
    version_key,
)

from ..clients.stores import MAX_CONCURRENCY, Store, open_store
from ..support.errors import ConfigError, Conflict, IntegrityError, NotFound, StepError
from ..support.hashing import HashingWriter
from ..support.progress import Progress, track
from .command import Command

log = logging.getLogger(__name__)

LATEST = "latest"
# Temp files are private (0600); the placed model is read by others too, e.g. an image's app user.
PLACED_MODE = 0o644
ProgressFactory = Callable[[str], Progress]


@dataclass(frozen=True)
class PublishedModel:
    name: str
    version: str
    sha256: str

    def outputs(self) -> dict:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class FetchedModel:
    name: str
    version: str
    sha256: str
    dest: Path
    downloaded_bytes: int  # 0 when DEST already held this model

    def outputs(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "dest": str(self.dest),
        }


def publish_model(
    store: Store,
    model_dir: Path,
    version: str | None = None,
    *,
    progress: ProgressFactory = track,
) -> PublishedModel:
    """Upload DIR's model as VERSION (default: model.json's), model.onnx first, model.json last."""
    card = _publishable(model_dir, version)
    # Listing first fails fast (no container, no access) before a large upload starts.
    equal = [v for v in published_versions(store, card.name) if same_version(v, card.version)]
    if equal:
        raise _exists(store, card.name, card.version, equal[0])
    base = f"{card.name}/{card.version}/"
    model_path = Path(model_dir) / MODEL_FILE
    log.info("publishing %s %s to %s", card.name, card.version, store.describe())
    try:
        with open(model_path, "rb") as source, progress(f"upload {MODEL_FILE}") as bar:
            store.create(base + MODEL_FILE, source, model_path.stat().st_size, bar)
    except Conflict:
        raise _exists(store, card.name, card.version, card.version) from None
    card_bytes = (json.dumps(card.to_dict(), indent=2) + "\n").encode()
    try:
        with progress(f"upload {CARD_FILE}") as bar:
            store.create(base + CARD_FILE, io.BytesIO(card_bytes), len(card_bytes), bar)
    except BaseException:
        # The model blob is ours (created above): take it back so no half version remains.
        with contextlib.suppress(StepError):
            store.delete(base + MODEL_FILE)
        raise
    log.info("published %s %s (sha256 %s)", card.name, card.version, card.sha256)
    return PublishedModel(card.name, card.version, card.sha256)


def fetch_model(
    store: Store,
    name: str,
    dest: Path,
    version: str = LATEST,
    *,
    progress: ProgressFactory = track,
) -> FetchedModel:
    """Resolve VERSION, download and verify model.onnx, and place both files in DEST."""
    _check_wanted(name, version)
    resolved = resolve_version(store, name, version)
    base = f"{name}/{resolved}/"
    card = _stored_card(store, name, resolved)
    dest = Path(dest)
    card_bytes = (json.dumps(card.to_dict(), indent=2) + "\n").encode()
    model_path = dest / MODEL_FILE
    if model_path.is_file() and file_sha256(model_path) == card.sha256:
        _place_bytes(dest / CARD_FILE, card_bytes)
        log.info("%s already holds %s %s (sha256 %s)", dest, name, resolved, card.sha256)
        return FetchedModel(name, resolved, card.sha256, dest, 0)
    log.info("fetching %s %s from %s", name, resolved, store.describe())
    made_dest = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{MODEL_FILE}.")
    tmp = Path(tmp_name)
    try:
        with (
            open(handle, "w+b", buffering=0) as raw,  # unbuffered: the hasher reads it back
            HashingWriter(raw) as out,
            progress(f"download {name} {resolved}") as bar,
        ):
            store.download(base + MODEL_FILE, out, bar)
        size = tmp.stat().st_size
        # Hashed on the way in; a second pass only if an SDK rewrote a range it had sent.
        received = out.hexdigest(size) or file_sha256(tmp)
        if received != card.sha256:
            raise IntegrityError(
                f"{store.describe(base + MODEL_FILE)} has sha256 {received}, but its "
                f"{CARD_FILE} says {card.sha256}: the stored model is damaged; publish it again "
                "as a new version"
            )
        _place_bytes(dest / CARD_FILE, card_bytes)
        tmp.chmod(PLACED_MODE)
        os.replace(tmp, model_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if made_dest:
            with contextlib.suppress(OSError):
                dest.rmdir()
        raise
    log.info("fetched %s %s to %s (sha256 %s)", name, resolved, dest, card.sha256)
    return FetchedModel(name, resolved, card.sha256, dest, size)


def published_versions(store: Store, name: str) -> list[str]:
    """Versions of NAME that have a model.json (a complete publish), in ascending order."""
    versions = set()
    prefix = f"{name}/"
    for key in store.keys(prefix):
        version, _, file = key[len(prefix) :].partition("/")
        if file == CARD_FILE and _valid(version):
            versions.add(version)
    return sorted(versions, key=version_key)


def resolve_version(store: Store, name: str, version: str = LATEST) -> str:
    """`latest` is the highest published version; 1.2 finds 1.2.0 (the same version)."""
    versions = published_versions(store, name)
    if not versions:
        raise NotFound(
            f"model {name!r} has no published version in {store.describe()}: check --name, "
            "or publish it with publish-model"
        )
    if version == LATEST:
        return versions[-1]
    for candidate in versions:
        if same_version(candidate, version):
            return candidate
    newest = ", ".join(reversed(versions[-5:]))
    raise NotFound(
        f"model {name!r} has no version {version} in {store.describe()} (newest: {newest}): "
        "pick a published version or --version latest"
    )


def same_version(a: str, b: str) -> bool:
    return version_key(a) == version_key(b)


def _stored_card(store: Store, name: str, version: str) -> ModelCard:
    key = f"{name}/{version}/{CARD_FILE}"
    try:
        card = ModelCard.from_dict(json.loads(store.read(key)))
    except (CardError, ValueError) as exc:
        raise IntegrityError(f"{store.describe(key)} is not a valid model card: {exc}") from None
    if card.name != name or not same_version(card.version, version):
        raise IntegrityError(
            f"{store.describe(key)} describes {card.name} {card.version}, not {name} {version}: "
            "the store was changed by hand; publish the model again as a new version"
        )
    return card


def _place_bytes(path: Path, data: bytes) -> None:
    """Write through a temp file next to `path` and rename: readers see old or new, never half."""
    if path.is_file() and path.read_bytes() == data:
        return
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    try:
        os.chmod(f.name, PLACED_MODE)
        os.replace(f.name, path)
    except BaseException:
        Path(f.name).unlink(missing_ok=True)
        raise


def _exists(store: Store, name: str, version: str, stored: str) -> Conflict:
    same = "" if stored == version else f" (as {stored})"
    return Conflict(
        f"model {name!r} version {version} already exists{same} in {store.describe()}: "
        "versions are immutable, publish a new one with --version"
    )


def _valid(version: str) -> bool:
    try:
        check_version(version)
    except CardError:
        return False
    return True


def _check_wanted(name: str, version: str) -> None:
    """A model name and a version (or `latest`) that a store can hold."""
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"--name {name!r} is not a model name: 1-64 of a-z, 0-9, '.', '_', '-'")
    if version != LATEST:
        try:
            check_version(version)
        except CardError as exc:
            raise ConfigError(f"--version: {exc}") from None


def _publishable(model_dir: Path, version: str | None) -> ModelCard:
    """The card of DIR's model, verified against model.onnx, as VERSION."""
    try:
        card = verify_model_dir(Path(model_dir))
        return card.with_version(version or card.version)
    except CardError as exc:
        raise ConfigError(str(exc)) from None


# Command line


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], s3://BUCKET[/PREFIX] "
        "or a folder (default: $MODEL_STORE)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=MAX_CONCURRENCY,
        help=f"parallel transfers per file (default: {MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="SDK retries of a failed request (default: 3)"
    )


def _publish_flags(parser: argparse.ArgumentParser) -> None:
    _store_flags(parser)
    parser.add_argument("--model-dir", required=True, type=Path, help="folder with the model")
    parser.add_argument("--version", help="version to publish (default: model.json's)")


def _fetch_flags(parser: argparse.ArgumentParser) -> None:
    _store_flags(parser)
    parser.add_argument("--name", help="model name (default: $MODEL_NAME)")
    parser.add_argument("--version", default=LATEST, help="version or 'latest' (default)")
    parser.add_argument("--dest", required=True, type=Path, help="folder to place the model in")


def _open(args: argparse.Namespace) -> Store:
    if args.max_concurrency < 1 or args.retries < 0:
        raise ConfigError("--max-concurrency must be at least 1 and --retries at least 0")
    url = args.store or os.environ.get("MODEL_STORE", "")
    return open_store(url, max_concurrency=args.max_concurrency, retries=args.retries)


def _model_name(args: argparse.Namespace) -> str:
    name = args.name or os.environ.get("MODEL_NAME", "")
    if not name:
        raise ConfigError("no model name: pass --name or set MODEL_NAME")
    return name


def check_publish(args: argparse.Namespace) -> str:
    """The card and the version, read, not the model hashed: publish_model does that once."""
    store = _open(args)
    try:
        card = read_card(args.model_dir)
        card = card.with_version(args.version or card.version)
    except CardError as exc:
        raise ConfigError(str(exc)) from None
    if not (Path(args.model_dir) / MODEL_FILE).is_file():
        raise ConfigError(f"{Path(args.model_dir) / MODEL_FILE} not found: train or fetch it first")
    return f"publish {card.name} {card.version} (sha256 {card.sha256}) to {store.describe()}"


def check_fetch(args: argparse.Namespace) -> str:
    store, name = _open(args), _model_name(args)
    _check_wanted(name, args.version)
    return f"fetch {name} {args.version} from {store.describe()} into {args.dest}"


def run_publish(args: argparse.Namespace) -> PublishedModel:
    return publish_model(_open(args), args.model_dir, args.version)


def run_fetch(args: argparse.Namespace) -> FetchedModel:
    return fetch_model(_open(args), _model_name(args), args.dest, args.version)


COMMANDS = (
    Command(
        "publish-model",
        help="upload model.onnx + model.json as a new, immutable model version",
        description="Upload DIR/model.onnx and DIR/model.json as version V of the model "
        "named in model.json. Publishing an existing version fails.",
        flags=_publish_flags,
        check=check_publish,
        run=run_publish,
    ),
    Command(
        "fetch-model",
        help="download and verify a model version into a folder",
        description="Resolve the version (latest = highest), download model.onnx, verify "
        "its sha256 against model.json, and place both in DEST.",
        flags=_fetch_flags,
        check=check_fetch,
        run=run_fetch,
    ),
)
