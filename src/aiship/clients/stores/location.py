"""What every store backend shares: the Store interface and the store URL, parsed and checked.

Keys are '/'-separated paths below the store's root (the container or bucket plus any prefix).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from ...support.errors import ConfigError
from ...support.progress import Progress

STORE_FORMS = (
    "https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], "
    "http://127.0.0.1:10000/devstoreaccount1/CONTAINER[/PREFIX] (Azurite), "
    "s3://BUCKET[/PREFIX], file:///PATH or a folder path, "
    "azureml://subscriptions/S/resourceGroups/G/workspaces/W, azureml://registries/R, "
    "mlflow+http(s)://HOST[:PORT]"
)
AZUREML_SCHEME = "azureml"
MLFLOW_SCHEMES = ("mlflow+http", "mlflow+https")
ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
BUCKET = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# Parallel transfers per object: with ranges read in one piece, 8 beat 2 and 4 and held memory
# under 40 MiB (bench/README.md, "Model fetch").
MAX_CONCURRENCY = 8


class Store(Protocol):
    """What the model commands need from a store; backends raise steps.errors types only."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix`."""

    def read(self, key: str) -> bytes:
        """A small object's bytes (model.json)."""

    def create(self, key: str, source: BinaryIO, size: int, progress: Progress) -> None:
        """Upload `size` bytes from `source` only if `key` does not exist yet, else Conflict."""

    def download(self, key: str, out: BinaryIO, progress: Progress) -> None:
        """Stream the object into the seekable file `out`, in parallel ranges where possible."""

    def delete(self, key: str) -> None:
        """Remove `key` if it exists (to undo a publish that could not finish)."""

    def describe(self, key: str = "") -> str:
        """Where `key` lives, for messages: never holds a secret."""


@dataclass(frozen=True)
class AzureLocation:
    account_url: str  # https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:PORT/ACCOUNT
    account: str
    container: str
    prefix: str
    sas: str = ""  # from the URL's query; the backend also looks at the environment


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str


@dataclass(frozen=True)
class FolderLocation:
    path: Path


Location = AzureLocation | S3Location | FolderLocation


def parse_store_url(url: str) -> Location:
    """Validate a store URL; errors quote it without its query, which may hold a SAS."""
    if not url or not url.strip():
        raise ConfigError(f"no model store given: pass --store ({STORE_FORMS})")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _azure(parts)
    if scheme == "s3":
        return _s3(parts)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"store {safe_url(url)}: file URLs name no host, use file:///PATH")
        return FolderLocation(Path(unquote(parts.path)))
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive: C:\models
        raise ConfigError(f"store {safe_url(url)}: unknown scheme {scheme!r}; use {STORE_FORMS}")
    return FolderLocation(Path(url).expanduser().absolute())  # read against where it was given


def safe_url(url: str) -> str:
    """The URL without query and fragment: what may be shown in logs and errors."""
    return url.split("?", 1)[0].split("#", 1)[0]


def join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def _azure(parts) -> AzureLocation:
    shown = safe_url(parts.geturl())
    host = (parts.hostname or "").lower()
    segments = [s for s in parts.path.split("/") if s]
    if host in LOCAL_HOSTS:  # Azurite: the account is the first path segment
        if len(segments) < 2:
            raise ConfigError(
                f"store {shown}: an Azurite URL is http://{host}:PORT/ACCOUNT/CONTAINER[/PREFIX]"
            )
        account, segments = segments[0], segments[1:]
        account_url = f"{parts.scheme}://{parts.netloc}/{account}"
    else:
        account, _, suffix = host.partition(".")
        if not suffix.startswith("blob.") or parts.scheme != "https":
            raise ConfigError(f"store {shown} is not an Azure Blob URL: use {STORE_FORMS}")
        if not segments:
            raise ConfigError(f"store {shown} names no container: add /CONTAINER to the URL")
        account_url = f"https://{parts.netloc}"
    container, prefix = segments[0], "/".join(segments[1:])
    if not ACCOUNT.match(account):
        raise ConfigError(f"store {shown}: {account!r} is not a storage account name")
    if not CONTAINER.match(container):
        raise ConfigError(
            f"store {shown}: {container!r} is not a container name "
            "(3-63 of a-z, 0-9 and single hyphens)"
        )
    if parts.query and "sig=" not in parts.query:
        raise ConfigError(f"store {shown}: the URL's query is not a SAS token (it has no sig=)")
    return AzureLocation(account_url, account, container, prefix, parts.query)


def _s3(parts) -> S3Location:
    shown = safe_url(parts.geturl())
    if parts.query:
        raise ConfigError(f"store {shown}: s3:// URLs take no query; credentials come from boto3")
    bucket = parts.netloc
    if not BUCKET.match(bucket):
        raise ConfigError(
            f"store {shown}: {bucket!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')"
        )
    return S3Location(bucket, parts.path.strip("/"))
