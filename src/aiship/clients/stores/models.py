"""The model store the commands see: named, versioned models, whatever keeps them.

A blob container, a bucket or a folder keeps a version as NAME/VERSION/<files> (ObjectModelStore,
over the key-value Store of location.py); a model registry (Azure ML, MLflow) keeps it as its own
model version. Either way a version is immutable, appears to readers only once all its files are
stored, and a publish that fails leaves no version behind.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from ...support.errors import ConfigError, StepError
from ...support.progress import Progress
from .location import Store

CARD_FILE = "model.json"  # app.card.CARD_FILE; repeated so that stores need not import the app
ProgressFactory = Callable[[str], Progress]


class ModelStore(Protocol):
    """What publish-model, fetch-model and evaluate-model need; errors are steps.errors types."""

    def describe(self, name: str = "", version: str = "", file: str = "") -> str:
        """Where the store, a model, a version or one of its files lives, for messages; never
        holds a secret."""

    def versions(self, name: str) -> list[str]:
        """NAME's complete versions, in any order; [] when it has none. NotFound when the store
        itself does not exist."""

    def alias(self, name: str, alias: str) -> str:
        """The version ALIAS (an MLflow alias, an Azure ML label) points at: NotFound when it
        points nowhere, ConfigError for a store that has no aliases."""

    def read_card(self, name: str, version: str) -> bytes:
        """The version's model.json, as published."""

    def download(
        self, name: str, version: str, file: str, out: BinaryIO, progress: Progress
    ) -> None:
        """Stream one of the version's files into the seekable file OUT."""

    def publish(
        self,
        name: str,
        version: str,
        files: Mapping[str, Path],
        card: bytes,
        progress: ProgressFactory,
        alias: str = "",
    ) -> None:
        """Store FILES (file name -> local path) and CARD (model.json) as VERSION, and point ALIAS
        at it when given. Conflict when VERSION exists (raced included); a publish that fails
        leaves no version a reader could see."""


class ObjectModelStore:
    """A model store in a container, bucket or folder: NAME/VERSION/<file>, model.json last.

    A version is complete once its model.json exists, so the card is written after every other
    file; if it cannot be, the files already written are taken back."""

    def __init__(self, objects: Store) -> None:
        self.objects = objects

    def describe(self, name: str = "", version: str = "", file: str = "") -> str:
        key = "/".join(part for part in (name, version, file) if part)
        return self.objects.describe(key if file else "")

    def versions(self, name: str) -> list[str]:
        prefix = f"{name}/"
        found = []
        for key in self.objects.keys(prefix):
            version, _, file = key[len(prefix) :].partition("/")
            if file == CARD_FILE:
                found.append(version)
        return found

    def alias(self, name: str, alias: str) -> str:
        raise ConfigError(
            f"--version @{alias}: {self.objects.describe()} has no aliases; they need a model "
            "registry store (azureml://, mlflow+http://): pass a version or 'latest'"
        )

    def read_card(self, name: str, version: str) -> bytes:
        return self.objects.read(f"{name}/{version}/{CARD_FILE}")

    def download(
        self, name: str, version: str, file: str, out: BinaryIO, progress: Progress
    ) -> None:
        self.objects.download(f"{name}/{version}/{file}", out, progress)

    def publish(
        self,
        name: str,
        version: str,
        files: Mapping[str, Path],
        card: bytes,
        progress: ProgressFactory,
        alias: str = "",
    ) -> None:
        if alias:
            self.alias(name, alias)  # refuses, before anything is written
        base = f"{name}/{version}/"
        written: list[str] = []
        try:
            for file, path in files.items():
                with open(path, "rb") as source, progress(f"upload {file}") as bar:
                    self.objects.create(base + file, source, path.stat().st_size, bar)
                written.append(base + file)
            with progress(f"upload {CARD_FILE}") as bar:
                self.objects.create(base + CARD_FILE, io.BytesIO(card), len(card), bar)
        except BaseException:
            for key in written:  # created above, so ours: no half version remains
                with contextlib.suppress(StepError):
                    self.objects.delete(key)
            raise
