"""Azure Blob Storage (or Azurite) as a model store.

Credentials, first found wins: a SAS in the store URL or AZURE_STORAGE_SAS_TOKEN, then
AZURE_STORAGE_CONNECTION_STRING, then DefaultAzureCredential. Every secret found is masked in CI.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from ...support import outputs
from ...support.errors import ConfigError, NotFound
from ...support.progress import Progress
from ..sdk_errors import azure_errors
from .location import MAX_CONCURRENCY, AzureLocation, join

# The storage emulator's well-known development account (`UseDevelopmentStorage=true`): public,
# documented, and valid only for emulators such as Azurite.
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
READ_ROLE = "Storage Blob Data Reader"
WRITE_ROLE = "Storage Blob Data Contributor"
# Ranged GETs and staged blocks of 8 MiB: fewer requests (each costs the service). Each range is
# read from the socket in one piece (connection_data_block_size), not joined from 256 KiB reads:
# half the time and a third of the memory (bench/README.md, "Model fetch").
CHUNK = 8 << 20
CONNECT_TIMEOUT = 20
READ_TIMEOUT = 120


@dataclass(frozen=True)
class Auth:
    """A credential for the SDK, and what to tell the user when Azure refuses it."""

    credential: Any
    source: str
    fix_credentials: str
    fix_read: str = ""
    fix_write: str = ""


class AzureBlobStore:
    """Keys are blob names below the container and prefix of the store URL."""

    def __init__(
        self,
        location: AzureLocation,
        *,
        max_concurrency: int = MAX_CONCURRENCY,
        retries: int = 3,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from azure.storage.blob import BlobServiceClient, ExponentialRetry

        self.location = location
        self.max_concurrency = max_concurrency
        self.auth = resolve_auth(location, os.environ if env is None else env)
        service = BlobServiceClient(
            location.account_url,
            credential=self.auth.credential,
            retry_policy=ExponentialRetry(initial_backoff=2, increment_base=2, retry_total=retries),
            max_single_get_size=CHUNK,
            max_chunk_get_size=CHUNK,
            max_single_put_size=CHUNK,
            max_block_size=CHUNK,
            connection_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            connection_data_block_size=CHUNK,  # read each range in one piece, not 256 KiB joins
        )
        self._container = service.get_container_client(location.container)

    def describe(self, key: str = "") -> str:
        container = f"{self.location.account_url}/{self.location.container}"
        if key:
            return f"blob {join(self.location.prefix, key)} in container {container}"
        return f"container {container}"

    def keys(self, prefix: str) -> Iterator[str]:
        root = join(self.location.prefix, "")
        fix = "create the container or fix --store"
        with self._errors(self.describe(), write=False, fix_not_found=fix):
            names = self._container.list_blob_names(name_starts_with=root + prefix)
            for name in names:
                yield name[len(root) :]

    def read(self, key: str) -> bytes:
        with self._errors(self.describe(key), write=False):
            return self._container.download_blob(self._name(key)).readall()

    def create(self, key: str, source: BinaryIO, size: int, progress: Progress) -> None:
        progress.set_total(size)
        with self._errors(self.describe(key), write=True):
            # overwrite=False sends If-None-Match: * (also on the final block list commit).
            self._container.upload_blob(
                self._name(key),
                source,
                length=size,
                overwrite=False,
                max_concurrency=self.max_concurrency,
                progress_hook=progress.update_to,
            )

    def download(self, key: str, out: BinaryIO, progress: Progress) -> None:
        with self._errors(self.describe(key), write=False):
            stream = self._container.download_blob(
                self._name(key),
                max_concurrency=self.max_concurrency,
                progress_hook=progress.update_to,
            )
            progress.set_total(stream.size)
            stream.readinto(out)

    def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound), self._errors(self.describe(key), write=True):
            self._container.delete_blob(self._name(key))

    def _name(self, key: str) -> str:
        return join(self.location.prefix, key)

    def _errors(self, what: str, *, write: bool, fix_not_found: str = ""):
        return azure_errors(
            what,
            role=WRITE_ROLE if write else READ_ROLE,
            fix_not_found=fix_not_found,
            fix_denied=self.auth.fix_write if write else self.auth.fix_read,
            fix_credentials=self.auth.fix_credentials,
        )


def resolve_auth(location: AzureLocation, env: Mapping[str, str]) -> Auth:
    """The first credential found, in the documented order; secrets are masked on the way."""
    from azure.core.credentials import AzureNamedKeyCredential

    sas = location.sas or env.get("AZURE_STORAGE_SAS_TOKEN", "").lstrip("?")
    if sas:
        source = "the store URL's SAS" if location.sas else "AZURE_STORAGE_SAS_TOKEN"
        outputs.mask(sas)
        return Auth(
            sas,
            source,
            fix_credentials=f"{source} is wrong or expired: make a new one",
            fix_read=f"{source} must be valid, unexpired and allow read (r) and list (l)",
            fix_write=f"{source} must be valid, unexpired and allow create (c) and write (w)",
        )
    connection_string = env.get("AZURE_STORAGE_CONNECTION_STRING", "")
    if connection_string:
        outputs.mask(connection_string)
        fields = parse_connection_string(connection_string)
        fix = "check the account key in AZURE_STORAGE_CONNECTION_STRING"
        if fields.get("sharedaccesssignature"):
            outputs.mask(fields["sharedaccesssignature"])
            return Auth(fields["sharedaccesssignature"], "AZURE_STORAGE_CONNECTION_STRING", fix)
        name, key = fields.get("accountname", ""), fields.get("accountkey", "")
        if fields.get("usedevelopmentstorage", "").lower() == "true":
            name, key = DEV_ACCOUNT, DEV_ACCOUNT_KEY
        if not (name and key):
            raise ConfigError(
                "AZURE_STORAGE_CONNECTION_STRING has neither AccountName and AccountKey nor "
                "SharedAccessSignature: copy it again from the storage account's Access keys"
            )
        outputs.mask(key)
        if name != location.account:
            raise ConfigError(
                f"AZURE_STORAGE_CONNECTION_STRING is for account {name!r}, but the store is in "
                f"{location.account!r}: use that account's connection string"
            )
        return Auth(AzureNamedKeyCredential(name, key), "AZURE_STORAGE_CONNECTION_STRING", fix)
    if location.account_url.startswith("http://"):
        raise ConfigError(
            f"no credentials for {location.account_url}: an http:// store needs a SAS "
            "(in the URL or AZURE_STORAGE_SAS_TOKEN) or AZURE_STORAGE_CONNECTION_STRING"
        )
    from ..azure import credential

    return Auth(credential(), "DefaultAzureCredential", "log in again (az login, or OIDC in CI)")


def parse_connection_string(text: str) -> dict[str, str]:
    """`Key=Value;...` with keys lower-cased; values may hold '=' (base64 keys do)."""
    pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
    return {key.strip().lower(): value.strip() for key, value in pairs}
