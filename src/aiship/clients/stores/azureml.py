"""An Azure Machine Learning workspace or registry as a model store, through the azure-ai-ml SDK.

A version is one model asset of type custom_model: a folder holding model.onnx, golden.jsonl when
given, and model.json, tagged with the sha256 and the card's main fields. The SDK uploads the folder
first (to the workspace's default datastore, or to the blob location a registry hands out for the
new version) and registers the model version after, so readers see a version only once all its
files are stored; a registration that fails leaves only unreferenced blobs. Labels are Azure ML's
model stage (`--version @production`: the highest version in that stage). Fetch reads the files
straight from blob storage, streaming: through the datastore's key, or the registry's read SAS.

Other clouds (or a local fake) are found through the SDK's own ARM_CLOUD_METADATA_URL.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from aiship.app.card import version_key

from ...support import outputs
from ...support.errors import ConfigError, Conflict, NotFound
from ...support.progress import Progress
from ..sdk_errors import azureml_errors
from .location import MAX_CONCURRENCY
from .models import CARD_FILE, ProgressFactory

FORM = "azureml://subscriptions/S/resourceGroups/G/workspaces/W or azureml://registries/R"
ASSET_FOLDER = "model"  # the uploaded folder's name, the last part of the asset's path
MODEL_TYPE = "custom_model"
# The card's fields copied into the version's tags, where the studio shows them (metrics and the
# golden set's sha256 too, as metric.NAME and golden.sha256).
CARD_TAGS = ("sha256", "name", "version", "framework", "created")
CHUNK = 8 << 20


@dataclass(frozen=True)
class Workspace:
    subscription: str
    resource_group: str
    name: str

    def describe(self) -> str:
        group = f"subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
        return f"workspace azureml://{group}/workspaces/{self.name}"

    # A workspace keeps a version's stage in the asset's own field.
    stage_tag = ""
    # Publish and fetch alike: a fetch lists the datastore's secrets, which a Reader may not.
    role = "AzureML Data Scientist"

    def client_scope(self) -> dict[str, str]:
        return {
            "subscription_id": self.subscription,
            "resource_group_name": self.resource_group,
            "workspace_name": self.name,
        }


@dataclass(frozen=True)
class Registry:
    """Its subscription and group come from Azure ML's registry discovery, not from the URL."""

    name: str
    # The registry API the SDK calls (2021-10-01-dataplanepreview) has no stage: a tag holds it.
    stage_tag = "stage"
    role = "AzureML Registry User"  # reads and writes a registry's assets

    def describe(self) -> str:
        return f"registry azureml://registries/{self.name}"

    def client_scope(self) -> dict[str, str]:
        return {"registry_name": self.name}


def parse_azureml_url(url: str) -> Workspace | Registry:
    """azureml://subscriptions/S/resourceGroups/G/workspaces/W or azureml://registries/R."""
    parts = urlsplit(url.strip())
    segments = [parts.netloc, *(s for s in parts.path.split("/") if s)]
    if parts.query or parts.fragment:
        raise ConfigError(f"store {url.split('?')[0]}: azureml:// URLs take no query: use {FORM}")
    keys = [s.lower() for s in segments[0::2]]
    if keys == ["registries"] and len(segments) == 2:
        return Registry(segments[1])
    if keys != ["subscriptions", "resourcegroups", "workspaces"] or len(segments) != 6:
        raise ConfigError(f"store {url} is not an Azure ML workspace or registry URL: use {FORM}")
    return Workspace(segments[1], segments[3], segments[5])


class AzureMLStore:
    """Model versions of one Azure ML workspace or registry; every SDK call is translated by
    _errors."""

    def __init__(
        self,
        scope: Workspace | Registry,
        *,
        max_concurrency: int = MAX_CONCURRENCY,
        retries: int = 3,
        credential: Any = None,
    ) -> None:
        from azure.ai.ml import MLClient

        from ..azure import credential as default_credential

        self.scope = scope
        self.max_concurrency = max_concurrency
        self.retries = retries
        self.credential = credential or default_credential()
        self._folders: dict[
            tuple[str, str], tuple[Any, str]
        ] = {}  # a version's files: looked up once
        with azureml_errors(scope.describe(), role=scope.role):
            self.client = MLClient(
                self.credential,
                **scope.client_scope(),
                enable_telemetry=False,  # the SDK's App Insights logging: never
                show_progress=False,
                retry_total=retries,
            )

    @classmethod
    def from_url(
        cls, url: str, *, max_concurrency: int = MAX_CONCURRENCY, retries: int = 3
    ) -> AzureMLStore:
        return cls(parse_azureml_url(url), max_concurrency=max_concurrency, retries=retries)

    def describe(self, name: str = "", version: str = "", file: str = "") -> str:
        where = self.scope.describe()
        if not name:
            return where
        model = f"model {name}" + (f" version {version}" if version else "")
        return f"{file + ' of ' if file else ''}{model} in {where}"

    def versions(self, name: str, *, archived: bool = False) -> list[str]:
        from azure.ai.ml.constants import ListViewType

        view = ListViewType.ALL if archived else ListViewType.ACTIVE_ONLY
        with self._errors(self.describe(), fix_not_found=f"check --store ({FORM})"):
            return [model.version for model in self.client.models.list(name, list_view_type=view)]

    def alias(self, name: str, alias: str) -> str:
        # Filtered here: a registry's list takes no stage.
        with self._errors(self.describe(name)):
            found = [
                model.version
                for model in self.client.models.list(name)
                if alias in ("latest", self._stage(model))
            ]
        if not found:
            raise NotFound(
                f"no version of model {name} has the stage {alias!r} in "
                f"{self.describe()}: publish one with --alias {alias}, or pass a version"
            )
        return max(found, key=version_key)

    def read_card(self, name: str, version: str) -> bytes:
        buffer = io.BytesIO()
        with Progress(f"read {CARD_FILE}", tty=False) as quiet:
            self.download(name, version, CARD_FILE, buffer, quiet)
        return buffer.getvalue()

    def download(
        self, name: str, version: str, file: str, out: BinaryIO, progress: Progress
    ) -> None:
        what = self.describe(name, version, file)
        with self._errors(what):
            container, folder = self._asset_folder(name, version)
            stream = container.download_blob(
                f"{folder}/{file}",
                max_concurrency=self.max_concurrency,
                progress_hook=progress.update_to,
            )
            progress.set_total(stream.size)
            stream.readinto(out)

    def publish(
        self,
        name: str,
        version: str,
        files: Mapping[str, Path],
        card: bytes,
        progress: ProgressFactory,
        alias: str = "",
    ) -> None:
        from azure.ai.ml.entities import Model

        if alias == "latest":
            raise ConfigError(
                "--alias latest: 'latest' is always the highest version; name a stage"
            )
        existing = [
            v for v in self.versions(name, archived=True) if version_key(v) == version_key(version)
        ]
        if existing:
            raise Conflict(
                f"{self.describe(name, existing[0])} exists: versions are immutable, publish "
                "a new version"
            )
        tags = _tags(card)
        if alias and self.scope.stage_tag:
            tags[self.scope.stage_tag] = alias
        with tempfile.TemporaryDirectory(prefix="aiship-azureml-") as tmp:
            folder = Path(tmp) / ASSET_FOLDER
            folder.mkdir()
            for file, path in files.items():  # links: the SDK uploads what they point at
                (folder / file).symlink_to(Path(path).resolve())
            (folder / CARD_FILE).write_bytes(card)
            model = Model(
                name=name,
                version=version,
                path=str(folder),
                type=MODEL_TYPE,
                tags=tags,
                stage=None if self.scope.stage_tag else alias or None,
                description=f"published by aiship (sha256 {tags.get('sha256', '?')})",
            )
            # The SDK uploads without a progress hook and prints a colour reset to stderr after.
            with (
                progress(f"upload and register {name} {version}"),
                self._errors(self.describe(name, version)),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                self.client.models.create_or_update(model)

    def _stage(self, model) -> str | None:
        tag = self.scope.stage_tag
        return (model.tags or {}).get(tag) if tag else model.stage

    def _asset_folder(self, name: str, version: str):
        """The datastore container and blob folder that hold the version's files."""
        if (name, version) not in self._folders:
            self._folders[(name, version)] = self._look_up_folder(name, version)
        return self._folders[(name, version)]

    def _look_up_folder(self, name: str, version: str):
        from azure.storage.blob import ContainerClient

        model = self.client.models.get(name, version=version)
        if isinstance(self.scope, Registry):
            account_url, container_name, folder, secret = self._registry_blobs(model)
        else:
            account_url, container_name, folder, secret = self._datastore_blobs(str(model.path))
        if secret:
            outputs.mask(secret)
        container = ContainerClient(
            account_url,
            container_name,
            credential=secret or self.credential,
            max_single_get_size=CHUNK,
            max_chunk_get_size=CHUNK,
            retry_total=self.retries,
        )
        return container, folder

    def _datastore_blobs(self, path: str) -> tuple[str, str, str, str]:
        """Account URL, container, folder and key (or SAS) of a workspace version's files."""
        datastore_name, folder = _datastore_path(path)
        datastore = self.client.datastores.get(datastore_name, include_secrets=True)
        credentials = datastore.credentials
        secret = getattr(credentials, "account_key", None) or getattr(
            credentials, "sas_token", None
        )
        account_url = f"{datastore.protocol}://{datastore.account_name}.blob.{datastore.endpoint}"
        return account_url, datastore.container_name, folder, secret or ""

    def _registry_blobs(self, model) -> tuple[str, str, str, str]:
        """The same for a registry version: the service hands out a read SAS for its blob URI.
        The SDK's own models.download makes this call; it has no public function of its own."""
        from azure.ai.ml._utils._registry_utils import get_storage_details_for_registry_assets

        uri, _ = get_storage_details_for_registry_assets(
            self.client.models._registry_service_client,
            asset_type="models",
            asset_name=model.name,
            asset_version=model.version,
            rg_name=self.client.resource_group_name,
            reg_name=self.scope.name,
            uri=str(model.path),
        )
        blob = urlsplit(uri)
        container_name, _, folder = blob.path.lstrip("/").partition("/")
        return f"{blob.scheme}://{blob.netloc}", container_name, folder.strip("/"), blob.query

    def _errors(self, what: str, *, fix_not_found: str = ""):
        return azureml_errors(what, role=self.scope.role, fix_not_found=fix_not_found)


def _datastore_path(path: str) -> tuple[str, str]:
    """azureml://[subscriptions/…/workspaces/W/]datastores/D/paths/P -> (D, P without '/')."""
    marker = "/datastores/"
    head, _, rest = path.partition(marker)
    datastore, _, folder = rest.partition("/paths/")
    if not (head.startswith("azureml:") and datastore and folder):
        raise ConfigError(
            f"model path {path!r} is not on a datastore: the version was not published by "
            "publish-model; publish the model again as a new version"
        )
    return datastore, folder.strip("/")


def _tags(card: bytes) -> dict[str, str]:
    fields = json.loads(card)
    tags = {key: str(fields[key]) for key in CARD_TAGS if key in fields}
    tags.update({f"metric.{key}": str(value) for key, value in fields.get("metrics", {}).items()})
    if fields.get("golden"):
        tags["golden.sha256"] = str(fields["golden"]["sha256"])
    return tags
