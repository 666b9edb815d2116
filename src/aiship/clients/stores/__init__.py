"""Model stores, chosen by URL: a container, bucket or folder (Azure Blob, S3, a folder: key-value
Stores, holding versions through ObjectModelStore) or a model registry (Azure ML, MLflow).

Nothing stored is ever overwritten. A backend's SDK is imported only when a store of its kind is
opened.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .location import (
    AZUREML_SCHEME,
    MAX_CONCURRENCY,
    MLFLOW_SCHEMES,
    AzureLocation,
    FolderLocation,
    Location,
    S3Location,
    Store,
    parse_store_url,
    safe_url,
)
from .models import ModelStore, ObjectModelStore, ProgressFactory

__all__ = [
    "MAX_CONCURRENCY",
    "AzureLocation",
    "FolderLocation",
    "Location",
    "ModelStore",
    "ObjectModelStore",
    "ProgressFactory",
    "S3Location",
    "Store",
    "open_model_store",
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


def open_model_store(
    url: str, *, max_concurrency: int = MAX_CONCURRENCY, retries: int = 3
) -> ModelStore:
    """The model store at `url`: a registry for azureml:// and mlflow+http(s)://, else versions
    kept in the container, bucket or folder that open_store opens."""
    scheme = urlsplit(url.strip()).scheme.lower() if url else ""
    if scheme == AZUREML_SCHEME:
        from .azureml import AzureMLStore

        return AzureMLStore.from_url(url, max_concurrency=max_concurrency, retries=retries)
    if scheme in MLFLOW_SCHEMES:
        from .mlflow import MLflowStore

        return MLflowStore.from_url(url, retries=retries)
    return ObjectModelStore(open_store(url, max_concurrency=max_concurrency, retries=retries))
