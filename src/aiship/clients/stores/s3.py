"""Amazon S3 (or any S3-compatible service via AWS_ENDPOINT_URL) as a model store.

Credentials and endpoint come from boto3's own chain (environment, profile, role, OIDC).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from ...support.progress import Progress
from ..sdk_errors import boto_errors
from .location import MAX_CONCURRENCY, S3Location, join

# Multipart parts and ranged GETs of 8 MiB; s3transfer bounds the chunks held in memory.
CHUNK = 8 << 20
CONNECT_TIMEOUT = 20
READ_TIMEOUT = 120


class S3Store:
    """Keys are object keys below the bucket and prefix of the store URL."""

    def __init__(
        self, location: S3Location, *, max_concurrency: int = MAX_CONCURRENCY, retries: int = 3
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.location = location
        self._client = boto3.session.Session().client(
            "s3",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": retries + 1},
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                max_pool_connections=max(10, max_concurrency),
            ),
        )
        # s3transfer cannot pass IfNoneMatch itself; botocore's event hooks add it to the two
        # calls that make an object visible, so every write through this client is create-only.
        for operation in ("PutObject", "CompleteMultipartUpload"):
            self._client.meta.events.register(
                f"before-parameter-build.s3.{operation}", _create_only
            )
        self._transfer = TransferConfig(
            multipart_threshold=CHUNK,
            multipart_chunksize=CHUNK,
            max_concurrency=max_concurrency,
        )

    def describe(self, key: str = "") -> str:
        if key:
            return f"object s3://{self.location.bucket}/{join(self.location.prefix, key)}"
        return f"bucket s3://{self.location.bucket}"

    def keys(self, prefix: str) -> Iterator[str]:
        root = join(self.location.prefix, "")
        fix = "create the bucket or fix --store"
        with boto_errors(self.describe(), permission="s3:ListBucket", fix_not_found=fix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=root + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(root) :]

    def read(self, key: str) -> bytes:
        with boto_errors(self.describe(key), permission="s3:GetObject"):
            response = self._client.get_object(Bucket=self.location.bucket, Key=self._key(key))
            return response["Body"].read()

    def create(self, key: str, source: BinaryIO, size: int, progress: Progress) -> None:
        progress.set_total(size)
        with boto_errors(self.describe(key), permission="s3:PutObject"):
            self._client.upload_fileobj(
                source,
                self.location.bucket,
                self._key(key),
                Config=self._transfer,
                Callback=progress.advance,
            )

    def download(self, key: str, out: BinaryIO, progress: Progress) -> None:
        with boto_errors(self.describe(key), permission="s3:GetObject"):
            head = self._client.head_object(Bucket=self.location.bucket, Key=self._key(key))
            progress.set_total(head["ContentLength"])
            self._client.download_fileobj(
                self.location.bucket,
                self._key(key),
                out,
                Config=self._transfer,
                Callback=progress.advance,
            )

    def delete(self, key: str) -> None:
        with boto_errors(self.describe(key), permission="s3:DeleteObject"):
            self._client.delete_object(Bucket=self.location.bucket, Key=self._key(key))

    def _key(self, key: str) -> str:
        return join(self.location.prefix, key)


def _create_only(params: dict, **_: object) -> None:
    params.setdefault("IfNoneMatch", "*")
