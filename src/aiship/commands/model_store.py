"""`publish-model` and `fetch-model`: immutable model versions in a model store.

A version is model.onnx, the golden set when the card names one (golden.jsonl) and model.json;
readers see it only once complete (clients/stores/models.py). A fetch verifies the sha256
of every file it received against the card before placing any of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiship.app.card import (
    CARD_FILE,
    GOLDEN_FILE,
    NAME_PATTERN,
    CardError,
    ModelCard,
    check_version,
    file_sha256,
    verify_model_dir,
    version_key,
)

from ..clients.stores import MAX_CONCURRENCY, ModelStore, ProgressFactory, open_model_store
from ..support.errors import ConfigError, Conflict, IntegrityError, NotFound
from ..support.hashing import HashingWriter
from ..support.progress import track
from .command import Command

log = logging.getLogger(__name__)

LATEST = "latest"
ALIAS = "@"  # --version @champion: the version an alias (an MLflow alias, an Azure ML label) names
ALIAS_PATTERN = NAME_PATTERN
# Temp files are private (0600); the placed model is read by others too, e.g. an image's app user.
PLACED_MODE = 0o644


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
    downloaded_bytes: int
    placed: tuple[str, ...] = ()  # the files written or removed in DEST; () when it held them

    def outputs(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "dest": str(self.dest),
        }


def publish_model(
    store: ModelStore,
    model_dir: Path,
    version: str | None = None,
    *,
    alias: str = "",
    progress: ProgressFactory = track,
) -> PublishedModel:
    """Store DIR's model (and golden set) as VERSION (default: model.json's), the card last."""
    card = _publishable(model_dir, version)
    _check_alias(alias)
    return publish_verified(store, model_dir, card, alias=alias, progress=progress)


def publish_verified(
    store: ModelStore,
    model_dir: Path,
    card: ModelCard,
    *,
    alias: str = "",
    progress: ProgressFactory = track,
) -> PublishedModel:
    """Store DIR's model as CARD says, once CARD is verified against DIR's files."""
    # Listing first fails fast (no container, no access) before a large upload starts.
    equal = [v for v in published_versions(store, card.name) if same_version(v, card.version)]
    if equal:
        raise _exists(store, card.name, card.version, equal[0])
    files = {file: Path(model_dir) / file for file in card.files()}
    card_bytes = _card_bytes(card)
    log.info("publishing %s %s to %s", card.name, card.version, store.describe())
    try:
        store.publish(card.name, card.version, files, card_bytes, progress, alias)
    except Conflict:
        raise _exists(store, card.name, card.version, card.version) from None
    log.info("published %s %s (sha256 %s)", card.name, card.version, card.sha256)
    return PublishedModel(card.name, card.version, card.sha256)


def fetch_model(
    store: ModelStore,
    name: str,
    dest: Path,
    version: str = LATEST,
    *,
    progress: ProgressFactory = track,
) -> FetchedModel:
    """Resolve VERSION, download and verify every one of its files, and make DEST hold exactly
    that version: its files and card as published, nothing of another version."""
    _check_wanted(name, version)
    resolved = resolve_version(store, name, version)
    card_bytes, card = _stored_card(store, name, resolved)
    dest = Path(dest)
    log.info("fetching %s %s from %s", name, resolved, store.describe())
    made_dest = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    received: dict[str, Path] = {}
    try:
        # Every file is downloaded and verified, even one DEST holds already: content changed in
        # the store after publishing is refused whether or not DEST was warm.
        for file, sha256 in card.files().items():
            received[file] = _download_verified(store, name, resolved, file, sha256, dest, progress)
        size = sum(path.stat().st_size for path in received.values())
        changed = [file for file, sha in card.files().items() if not _holds(dest, file, sha)]
        # Every file verified: only now is anything in DEST replaced, the card last.
        for file in changed:
            received[file].chmod(PLACED_MODE)
            os.replace(received.pop(file), dest / file)
        stale = [f for f in (GOLDEN_FILE,) if f not in card.files() and (dest / f).exists()]
        for file in stale:  # another version's golden set: no gate may score it as this one's
            (dest / file).unlink()
        placed = tuple(changed + stale) + (
            (CARD_FILE,) if _place_bytes(dest / CARD_FILE, card_bytes) else ()
        )
    except BaseException:
        _remove(received.values())
        if made_dest:
            with contextlib.suppress(OSError):
                dest.rmdir()
        raise
    _remove(received.values())  # the copies of files DEST held already
    if placed:
        log.info("fetched %s %s to %s (sha256 %s)", name, resolved, dest, card.sha256)
    else:
        log.info("%s already holds %s %s (sha256 %s), verified", dest, name, resolved, card.sha256)
    return FetchedModel(name, resolved, card.sha256, dest, size, placed)


def _download_verified(
    store: ModelStore,
    name: str,
    version: str,
    file: str,
    sha256: str,
    dest: Path,
    progress: ProgressFactory,
) -> Path:
    """FILE downloaded into a private temp file in DEST and checked against SHA256."""
    handle, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{file}.")
    tmp = Path(tmp_name)
    try:
        with (
            open(handle, "w+b", buffering=0) as raw,  # unbuffered: the hasher reads it back
            HashingWriter(raw) as out,
            progress(f"download {name} {version} {file}") as bar,
        ):
            store.download(name, version, file, out, bar)
        # Hashed on the way in; a second pass only if an SDK rewrote a range it had sent.
        received = out.hexdigest(tmp.stat().st_size) or file_sha256(tmp)
        if received != sha256:
            raise IntegrityError(
                f"{store.describe(name, version, file)} has sha256 {received}, but its "
                f"{CARD_FILE} says {sha256}: the stored model is damaged; publish it again "
                "as a new version"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _holds(dest: Path, file: str, sha256: str) -> bool:
    path = dest / file
    return path.is_file() and file_sha256(path) == sha256


def _card_bytes(card: ModelCard) -> bytes:
    return (json.dumps(card.to_dict(), indent=2) + "\n").encode()


def published_versions(store: ModelStore, name: str) -> list[str]:
    """NAME's complete, valid versions, in ascending order."""
    return sorted({v for v in store.versions(name) if _valid(v)}, key=version_key)


def resolve_version(store: ModelStore, name: str, version: str = LATEST) -> str:
    """`latest` is the highest published version, @ALIAS the one the alias names; 1.2 finds 1.2.0
    (the same version)."""
    if version.startswith(ALIAS):
        return store.alias(name, version[len(ALIAS) :])
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


def _stored_card(store: ModelStore, name: str, version: str) -> tuple[bytes, ModelCard]:
    """The version's model.json as published, and the card it holds."""
    where = store.describe(name, version, CARD_FILE)
    data = store.read_card(name, version)
    try:
        card = ModelCard.from_dict(json.loads(data))
    except (CardError, ValueError) as exc:
        raise IntegrityError(f"{where} is not a valid model card: {exc}") from None
    if card.name != name or not same_version(card.version, version):
        raise IntegrityError(
            f"{where} describes {card.name} {card.version}, not {name} {version}: "
            "the store was changed by hand; publish the model again as a new version"
        )
    return data, card


def _place_bytes(path: Path, data: bytes) -> bool:
    """Write through a temp file next to `path` and rename: readers see old or new, never half.
    False when `path` held DATA already."""
    if path.is_file() and path.read_bytes() == data:
        return False
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    try:
        os.chmod(f.name, PLACED_MODE)
        os.replace(f.name, path)
    except BaseException:
        Path(f.name).unlink(missing_ok=True)
        raise
    return True


def _exists(store: ModelStore, name: str, version: str, stored: str) -> Conflict:
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
    if version.startswith(ALIAS):
        _check_alias(version[len(ALIAS) :])
    elif version != LATEST:
        try:
            check_version(version)
        except CardError as exc:
            raise ConfigError(f"--version: {exc}") from None


def _check_alias(alias: str) -> None:
    if alias and not ALIAS_PATTERN.match(alias):
        raise ConfigError(f"alias {alias!r} is not valid: 1-64 of a-z, 0-9, '.', '_', '-'")


def _publishable(model_dir: Path, version: str | None) -> ModelCard:
    """The card of DIR's model, verified against its files, as VERSION."""
    try:
        card = verify_model_dir(Path(model_dir), golden=True)
        return card.with_version(version or card.version)
    except CardError as exc:
        raise ConfigError(str(exc)) from None


# Command line


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], s3://BUCKET[/PREFIX], "
        "a folder, azureml://... or mlflow+https://HOST (default: $MODEL_STORE)",
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
    parser.add_argument(
        "--alias", default="", help="point this alias (MLflow) or label (Azure ML) at the version"
    )


def _fetch_flags(parser: argparse.ArgumentParser) -> None:
    _store_flags(parser)
    parser.add_argument("--name", help="model name (default: $MODEL_NAME)")
    parser.add_argument(
        "--version", default=LATEST, help="a version, @ALIAS (registries) or 'latest' (default)"
    )
    parser.add_argument("--dest", required=True, type=Path, help="folder to place the model in")


def _open(args: argparse.Namespace) -> ModelStore:
    if args.max_concurrency < 1 or args.retries < 0:
        raise ConfigError("--max-concurrency must be at least 1 and --retries at least 0")
    url = args.store or os.environ.get("MODEL_STORE", "")
    return open_model_store(url, max_concurrency=args.max_concurrency, retries=args.retries)


def _model_name(args: argparse.Namespace) -> str:
    name = args.name or os.environ.get("MODEL_NAME", "")
    if not name:
        raise ConfigError("no model name: pass --name or set MODEL_NAME")
    return name


@dataclass(frozen=True)
class PublishPlan:
    """The store, and the model verified against its card (hashed once, here)."""

    store: ModelStore
    model_dir: Path
    card: ModelCard
    alias: str = ""

    def describe(self) -> str:
        card = self.card
        return (
            f"publish {card.name} {card.version} (sha256 {card.sha256}) to {self.store.describe()}"
        )


@dataclass(frozen=True)
class FetchPlan:
    store: ModelStore
    name: str
    version: str
    dest: Path

    def describe(self) -> str:
        return f"fetch {self.name} {self.version} from {self.store.describe()} into {self.dest}"


def plan_publish(args: argparse.Namespace) -> PublishPlan:
    store = _open(args)
    _check_alias(args.alias)
    return PublishPlan(
        store, args.model_dir, _publishable(args.model_dir, args.version), args.alias
    )


def plan_fetch(args: argparse.Namespace) -> FetchPlan:
    store, name = _open(args), _model_name(args)
    _check_wanted(name, args.version)
    return FetchPlan(store, name, args.version, args.dest)


def run_publish(plan: PublishPlan) -> PublishedModel:
    return publish_verified(plan.store, plan.model_dir, plan.card, alias=plan.alias)


def run_fetch(plan: FetchPlan) -> FetchedModel:
    return fetch_model(plan.store, plan.name, plan.dest, plan.version)


COMMANDS = (
    Command(
        "publish-model",
        help="upload model.onnx + model.json as a new, immutable model version",
        description="Upload DIR/model.onnx, DIR/golden.jsonl when model.json names one, and "
        "DIR/model.json as version V of the model named in model.json. Publishing an existing "
        "version fails.",
        flags=_publish_flags,
        plan=plan_publish,
        run=run_publish,
    ),
    Command(
        "fetch-model",
        help="download and verify a model version into a folder",
        description="Resolve the version (latest = highest, @ALIAS = what the alias names), "
        "download model.onnx (and golden.jsonl), verify their sha256 against model.json, and place "
        "them in DEST.",
        flags=_fetch_flags,
        plan=plan_fetch,
        run=run_fetch,
    ),
)
