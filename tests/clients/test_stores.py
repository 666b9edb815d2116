"""The store backends: Azure credentials and SAS permissions, secrets kept out of logs, S3
create-only writes, store URLs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest

from aiship.app.card import file_sha256, read_card
from aiship.clients.stores import (
    AzureLocation,
    FolderLocation,
    S3Location,
    open_model_store,
    open_store,
    parse_store_url,
)
from aiship.commands.model_store import fetch_model, published_versions
from aiship.local.azurite import ACCOUNT, DEV_ACCOUNT_KEY, Azurite
from aiship.support.errors import (
    AuthError,
    ConfigError,
    Conflict,
    Unavailable,
)
from aiship.support.progress import Progress
from tests.clirun import run_steps
from tests.stores import azure_store, fetch, publish, quiet, snapshot


def test_the_store_stopped_mid_download_then_a_rerun_succeeds(big_model_dir, tmp_path, monkeypatch):
    """Azurite stops (SIGTERM: a SIGKILL would lose its metadata) while the model streams in."""
    azurite = Azurite(location=tmp_path / "azurite", log_path=tmp_path / "azurite.log")
    with azurite:
        target = azure_store(azurite, {})
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        publish(target.url, big_model_dir)

        class StopsTheStore(Progress):
            def update_to(self, done: int, total: int | None = None) -> None:
                super().update_to(done, total)
                if total and done >= total // 4:
                    azurite.stop()

        dest = tmp_path / "dest"
        dest.mkdir()
        (dest / "model.onnx").write_bytes(b"the model that was here")
        before = snapshot(dest)
        # Two at a time, so that chunks are still to be asked for when Azurite has gone.
        store = open_model_store(target.url, retries=1, max_concurrency=2)
        with pytest.raises(Unavailable, match=r"blob digits/1\.0\.0/model\.onnx .* reached"):
            fetch_model(
                store, "digits", dest, progress=lambda label: StopsTheStore(label, tty=False)
            )
        assert snapshot(dest) == before  # no partial file, no temp file, old model intact

        with Azurite(port=azurite.port, location=tmp_path / "azurite"):
            fetched = fetch(target.url, dest, retries=1)
    assert fetched.downloaded_bytes == (big_model_dir / "model.onnx").stat().st_size
    assert file_sha256(dest / "model.onnx") == read_card(big_model_dir).sha256
    assert sorted(snapshot(dest)) == ["model.json", "model.onnx"]


def container_sas(container_url: str, **permissions: bool) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        ACCOUNT,
        container_url.rsplit("/", 1)[1],
        account_key=DEV_ACCOUNT_KEY,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


@pytest.fixture
def azure_target(azurite, azure_env):
    return azure_store(azurite, azure_env)


def test_a_read_only_sas_can_fetch_but_not_publish(azure_target, model_dir, tmp_path):
    publish(azure_target.url, model_dir)
    sas_url = f"{azure_target.url}?{container_sas(azure_target.url, read=True, list=True)}"

    assert fetch(sas_url, tmp_path / "dest").sha256 == read_card(model_dir).sha256
    # The SAS in the URL wins over the connection string that could write.
    with pytest.raises(AuthError, match=r"denied \(\w+\): the store URL's SAS .* create \(c\)"):
        publish(sas_url, model_dir, version="2.0.0")
    assert published_versions(open_model_store(azure_target.url), "digits") == ["1.0.0"]


def test_a_sas_from_the_environment(azure_target, model_dir, tmp_path, monkeypatch):
    publish(azure_target.url, model_dir)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", container_sas(azure_target.url, read=True))
    with pytest.raises(AuthError, match=r"AZURE_STORAGE_SAS_TOKEN must be .* list \(l\)"):
        fetch(azure_target.url, tmp_path / "dest")
    monkeypatch.setenv(
        "AZURE_STORAGE_SAS_TOKEN", container_sas(azure_target.url, read=True, list=True)
    )
    assert fetch(azure_target.url, tmp_path / "dest").version == "1.0.0"


def test_no_credentials_for_azurite_is_a_config_error(azure_target, monkeypatch, tmp_path):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(ConfigError, match="an http:// store needs a SAS"):
        fetch(azure_target.url, tmp_path / "dest")


def test_no_secret_reaches_any_log(azure_target, model_dir, tmp_path):
    read_sas = container_sas(azure_target.url, read=True, list=True)
    signature = parse_qs(read_sas)["sig"][0]
    forged = read_sas.replace(
        read_sas.split("sig=")[1].split("&")[0], "Zm9yZ2VkLXNpZ25hdHVyZQ%3D%3D"
    )
    runs = [
        run_steps(
            "publish-model", "-v", "--store", azure_target.url, "--model-dir", str(model_dir),
        ),
        run_steps(
            "fetch-model", "-v", "--store", f"{azure_target.url}?{read_sas}", "--name", "digits",
            "--dest", str(tmp_path / "dest"),
        ),
        run_steps(
            "publish-model", "-v", "--store", f"{azure_target.url}?{read_sas}",
            "--model-dir", str(model_dir), "--version", "9.9.9",
        ),
        run_steps(
            "fetch-model", "-v", "--store", f"{azure_target.url}?{forged}", "--name", "digits",
            "--dest", str(tmp_path / "forged"),
        ),
    ]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0, 3, 3], [r.stderr[-2000:] for r in runs]
    assert "SAS must be valid, unexpired and allow create (c) and write (w)" in runs[2].stderr
    # Azurite answers a forged signature with AuthorizationFailure (Azure: AuthenticationFailed).
    assert "denied (AuthorizationFailure): the store URL's SAS must be valid" in runs[3].stderr
    logged = "".join(r.stdout + r.stderr for r in runs)
    assert "x-ms-version" in logged  # -v did log the SDK's requests
    for secret in (DEV_ACCOUNT_KEY, signature, read_sas.split("sig=")[1], "Zm9yZ2VkLXNpZ25hdHVyZQ"):
        assert secret not in logged
        assert unquote(secret) not in logged


def test_secrets_are_masked_in_github_actions(azure_target, model_dir, tmp_path):
    publish(azure_target.url, model_dir)
    read_sas = container_sas(azure_target.url, read=True, list=True)
    run = run_steps(
        "fetch-model", "--store", f"{azure_target.url}?{read_sas}", "--name", "digits",
        "--dest", str(tmp_path / "dest"), env={"GITHUB_ACTIONS": "true"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"::add-mask::{read_sas}" in run.stdout.splitlines()
    assert read_sas not in run.stderr


def test_s3_writes_are_create_only(aws_env):
    """Every write goes out with If-None-Match: * (moto 5 honours it, as S3 does)."""
    import boto3

    target = parse_store_url("s3://conditional-bucket/p")
    boto3.client("s3").create_bucket(Bucket="conditional-bucket")
    store = open_store("s3://conditional-bucket/p")
    store.create("k", io.BytesIO(b"first"), 5, quiet("x"))
    sent = []
    store._client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers)
    )
    with pytest.raises(Conflict, match=r"object s3://conditional-bucket/p/k already exists"):
        store.create("k", io.BytesIO(b"second"), 6, quiet("x"))
    assert target == S3Location("conditional-bucket", "p")
    assert sent and sent[0]["If-None-Match"] == b"*"


@pytest.mark.parametrize(
    ("url", "location"),
    [
        (
            "https://acct.blob.core.windows.net/models/team/a",
            AzureLocation("https://acct.blob.core.windows.net", "acct", "models", "team/a"),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/models?sv=1&sig=abc",
            AzureLocation(
                "http://127.0.0.1:10000/devstoreaccount1", ACCOUNT, "models", "", "sv=1&sig=abc"
            ),
        ),
        ("s3://my-bucket/a/b/", S3Location("my-bucket", "a/b")),
        ("file:///srv/models", FolderLocation(Path("/srv/models"))),
        ("relative/models", FolderLocation(Path.cwd() / "relative/models")),
    ],
)
def test_store_urls(url, location):
    assert parse_store_url(url) == location


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "no model store given"),
        ("ftp://host/models", "unknown scheme 'ftp'"),
        ("https://example.com/models", "is not an Azure Blob URL"),
        ("http://acct.blob.core.windows.net/models", "is not an Azure Blob URL"),
        ("https://acct.blob.core.windows.net", "names no container"),
        ("https://acct.blob.core.windows.net/Models", "'Models' is not a container name"),
        ("https://acct.blob.core.windows.net/a--b", "'a--b' is not a container name"),
        ("http://127.0.0.1:10000/devstoreaccount1", "an Azurite URL is"),
        ("https://a.blob.core.windows.net/models", "'a' is not a storage account name"),
        ("https://acct.blob.core.windows.net/models?sv=1&se=2", "query is not a SAS"),
        ("s3://Bad_Bucket/x", "'Bad_Bucket' is not a bucket name"),
        ("s3://bucket/x?versionId=1", "take no query"),
        ("file://server/share", "file URLs name no host"),
    ],
)
def test_malformed_store_urls(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_store_url(url)


def test_errors_never_quote_a_sas():
    with pytest.raises(ConfigError) as caught:
        parse_store_url("https://acct.blob.core.windows.net/Models?sv=1&sig=SECRETSIG")
    assert "SECRETSIG" not in str(caught.value) and "sv=1" not in str(caught.value)
