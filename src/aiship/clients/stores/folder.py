"""A model store in a folder (a local disk or a mounted share)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ...support.errors import AuthError, Conflict, NotFound, StepError
from ...support.progress import Progress

CHUNK = 1 << 20


class FolderStore:
    """Keys are paths below `root`; a create hard-links a finished temp file into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def describe(self, key: str = "") -> str:
        return f"folder store {self.root / key if key else self.root}"

    def keys(self, prefix: str) -> Iterator[str]:
        base = self._existing_root()
        with _os_errors(self.describe(prefix)):
            for path in sorted(base.rglob("*")):
                key = path.relative_to(base).as_posix()
                # Temp files of creates still running start with a dot.
                if key.startswith(prefix) and path.is_file() and not path.name.startswith("."):
                    yield key

    def read(self, key: str) -> bytes:
        with _os_errors(self.describe(key)):
            return self._path(key).read_bytes()

    def create(self, key: str, source: BinaryIO, size: int, progress: Progress) -> None:
        path = self._path(key)
        progress.set_total(size)
        with _os_errors(self.describe(key)):
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.") as tmp:
                _copy(source, tmp, progress)
                tmp.flush()
                os.fsync(tmp.fileno())
                try:
                    # link() fails if the name exists: an atomic create of a complete file.
                    os.link(tmp.name, path)
                except FileExistsError:
                    raise Conflict(f"{self.describe(key)} already exists") from None

    def download(self, key: str, out: BinaryIO, progress: Progress) -> None:
        path = self._path(key)
        with _os_errors(self.describe(key)), open(path, "rb") as source:
            progress.set_total(os.fstat(source.fileno()).st_size)
            _copy(source, out, progress)

    def delete(self, key: str) -> None:
        with _os_errors(self.describe(key)):
            self._path(key).unlink(missing_ok=True)

    def _existing_root(self) -> Path:
        if not self.root.is_dir():
            raise NotFound(f"{self.describe()} does not exist: create the folder or fix --store")
        return self.root

    def _path(self, key: str) -> Path:
        path = self._existing_root() / key
        if ".." in Path(key).parts:
            raise StepError(f"key {key!r} leaves {self.describe()}")
        return path


def _copy(source: BinaryIO, out: BinaryIO, progress: Progress) -> None:
    while chunk := source.read(CHUNK):
        out.write(chunk)
        progress.advance(len(chunk))


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """File system errors as the steps' errors, like sdk_errors does for the cloud SDKs."""
    try:
        yield
    except FileNotFoundError:
        raise NotFound(f"{what} not found") from None
    except PermissionError:
        raise AuthError(f"no permission to access {what}: fix the folder's owner or mode") from None
    except OSError as exc:
        raise StepError(f"{what}: {exc.strerror or exc}") from None
