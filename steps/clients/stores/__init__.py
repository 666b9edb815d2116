"""Model stores: one small interface, three backends (Azure Blob, S3, a folder), chosen by URL.

Every write is a conditional create, so nothing stored is ever overwritten. A backend's SDK is
imported only when a store of its kind is opened.
"""

from __future__ import annotations

from .location import (
    MAX_CONCURRENCY,
    AzureLocation,
    FolderLocation,
    Location,
    S3Location,
    Store,
    parse_store_url,
    safe_url,
)

__all__ = [
    "MAX_CONCURRENCY",
    "AzureLocation",
    "FolderLocation",
    "Location",
    "S3Location",
    "Store",
    "open_store",
    "parse_store_url",
    "safe_url",
]


def open_store(url: str, *, max_concurrency: int = MAX_CONCURRENCY, retries: int = 3) -> Store:
    """The backend for `url`, configured but not yet contacted."""
    location = parse_store_url(url)
    if isinstance(location, AzureLocation):
        from .azure_blob import AzureBlobStore

        return AzureBlobStore(location, max_concurrency=max_concurrency, retries=retries)
    if isinstance(location, S3Location):
        from .s3 import S3Store

        return S3Store(location, max_concurrency=max_concurrency, retries=retries)
    from .folder import FolderStore

    return FolderStore(location.path)
