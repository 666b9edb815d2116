"""publish-model and fetch-model against Azurite, moto in server mode and a folder."""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest

from app.card import file_sha256, read_card
from steps.errors import AuthError, ConfigError, Conflict, IntegrityError, NotFound, Unavailable
from steps.local.azurite import ACCOUNT, DEV_ACCOUNT_KEY, Azurite
from steps.model_store import fetch_model, publish_model, published_versions
from steps.progress import Progress
from steps.stores import AzureLocation, FolderLocation, S3Location, open_store, parse_store_url
from tests.stepscli import run_steps

from .conftest import azure_store, padded_model


def quiet(label: str) -> Progress:
    return Progress(label, tty=False)


def publish(url: str, model_dir: Path, version: str | None = None, **options):
    return publish_model(open_store(url, **options), model_dir, version, progress=quiet)


def fetch(url: str, dest: Path, version: str = "latest", name: str = "digits", **options):
    return fetch_model(open_store(url, **options), name, dest, version, progress=quiet)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (hidden temp files included) with its bytes."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")}


# Round trip, versions, immutability: every backend


def test_round_trip(store, model_dir, tmp_path):
    card = read_card(model_dir)
    published = publish(store.url, model_dir)
    assert (published.name, published.version, published.sha256) == ("digits", "1.0.0", card.sha256)

    fetched = fetch(store.url, tmp_path / "dest")
    assert fetched.outputs() == {
        "name": "digits",
        "version": "1.0.0",
        "sha256": card.sha256,
        "dest": str(tmp_path / "dest"),
    }
    assert (tmp_path / "dest/model.onnx").read_bytes() == (model_dir / "model.onnx").read_bytes()
    assert read_card(tmp_path / "dest") == card
    assert fetched.downloaded_bytes == (model_dir / "model.onnx").stat().st_size
    assert sorted(snapshot(tmp_path / "dest")) == ["model.json", "model.onnx"]


def test_a_big_model_is_hashed_on_the_way_in(store, big_model_dir, tmp_path, monkeypatch):
    """Parallel ranged writes land out of order; the digest still needs no second pass."""
    publish(store.url, big_model_dir)

    def second_pass(path):
        raise AssertionError(f"{path} was read again to hash it")

    monkeypatch.setattr("steps.model_store.file_sha256", second_pass)
    fetched = fetch(store.url, tmp_path / "dest", max_concurrency=4)
    assert fetched.sha256 == read_card(big_model_dir).sha256
    assert fetched.downloaded_bytes == (big_model_dir / "model.onnx").stat().st_size
    assert file_sha256(tmp_path / "dest/model.onnx") == fetched.sha256


def test_publish_as_another_version_rewrites_the_card(store, model_dir, tmp_path):
    publish(store.url, model_dir, version="2.1")
    fetched = fetch(store.url, tmp_path / "dest", version="2.1")
    assert fetched.version == "2.1" and read_card(tmp_path / "dest").version == "2.1"
    assert read_card(model_dir).version == "1.0.0"  # the data scientist's folder is unchanged


def test_latest_is_the_numerically_highest_complete_version(store, model_dir, tmp_path):
    for version in ("1.9.0", "1.10.0", "1.2"):
        publish(store.url, model_dir, version=version)
    # An interrupted publish (no model.json) and stray keys are not versions.
    store.put("digits/2.0.0/model.onnx", b"half a publish")
    store.put("digits/notes/model.json", b"{}")
    store.put("digits/README.txt", b"hello")

    assert published_versions(open_store(store.url), "digits") == ["1.2", "1.9.0", "1.10.0"]
    assert fetch(store.url, tmp_path / "latest").version == "1.10.0"
    assert read_card(tmp_path / "latest").version == "1.10.0"
    # 1.9 and 1.9.0 are the same version.
    assert fetch(store.url, tmp_path / "old", version="1.9").version == "1.9.0"


def test_a_version_is_published_once(store, model_dir):
    publish(store.url, model_dir)
    with pytest.raises(Conflict, match=r"version 1\.0\.0 already exists in .*immutable"):
        publish(store.url, model_dir)
    with pytest.raises(Conflict, match=r"version 1\.0 already exists \(as 1\.0\.0\)"):
        publish(store.url, model_dir, version="1.0")


def test_a_create_never_overwrites(store):
    """The conditional create itself, without the listing that publish does first."""
    backend = open_store(store.url)
    backend.create("digits/1.0.0/model.onnx", io.BytesIO(b"first"), 5, quiet("create"))
    with pytest.raises(Conflict, match=r"digits/1\.0\.0/model\.onnx.* already exists"):
        backend.create("digits/1.0.0/model.onnx", io.BytesIO(b"second"), 6, quiet("create"))
    assert backend.read("digits/1.0.0/model.onnx") == b"first"
    assert list(backend.keys("digits/")) == ["digits/1.0.0/model.onnx"]


def test_a_publish_that_cannot_finish_takes_its_model_back(store, model_dir, monkeypatch):
    backend = open_store(store.url)
    create = backend.create

    def card_upload_fails(key, source, size, progress):
        if key.endswith("model.json"):
            raise Unavailable(f"{backend.describe(key)} could not be reached: test")
        create(key, source, size, progress)

    monkeypatch.setattr(backend, "create", card_upload_fails)
    with pytest.raises(Unavailable, match=r"model\.json.* could not be reached: test"):
        publish_model(backend, model_dir, progress=quiet)
    assert list(open_store(store.url).keys("digits/")) == []
    assert publish(store.url, model_dir).version == "1.0.0"  # and the version is still free


def test_racing_publishes_have_exactly_one_winner(store, trained_model_dir, tmp_path):
    models = [
        padded_model(tmp_path / side, trained_model_dir, 1 << 20, seed=side.encode())
        for side in ("left", "right")
    ]
    start = threading.Barrier(2, timeout=30)

    def race(model_dir: Path):
        start.wait()
        try:
            return publish(store.url, model_dir)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(race, models))
    winners = [r for r in results if not isinstance(r, Conflict)]
    assert len(winners) == 1, results
    fetched = fetch(store.url, tmp_path / "dest")
    assert fetched.sha256 == winners[0].sha256
    assert file_sha256(tmp_path / "dest/model.onnx") == winners[0].sha256


def test_a_missing_name(store, model_dir, tmp_path):
    publish(store.url, model_dir)
    with pytest.raises(NotFound, match=r"model 'other' has no published version in .*--name"):
        fetch(store.url, tmp_path / "dest", name="other")
    assert not (tmp_path / "dest").exists()


def test_a_missing_version(store, model_dir, tmp_path):
    publish(store.url, model_dir)
    publish(store.url, model_dir, version="1.1.0")
    with pytest.raises(NotFound, match=r"no version 3\.0 in .* \(newest: 1\.1\.0, 1\.0\.0\)"):
        fetch(store.url, tmp_path / "dest", version="3.0")
    assert not (tmp_path / "dest").exists()


def test_a_missing_container_bucket_or_folder(store, tmp_path):
    url = {
        "azure": store.url.rsplit("/", 1)[0] + "/no-such-container",
        "s3": "s3://no-such-bucket-here",
        "folder": str(tmp_path / "no-such-folder"),
    }[store.kind]
    with pytest.raises(NotFound, match=r"not.*(create the container|create the bucket|create the)"):
        fetch(url, tmp_path / "dest")


def test_a_damaged_stored_model_fails_and_leaves_dest_alone(store, model_dir, tmp_path):
    publish(store.url, model_dir)
    damaged = bytearray((model_dir / "model.onnx").read_bytes())
    damaged[100] ^= 0xFF
    store.put("digits/1.0.0/model.onnx", bytes(damaged))

    with pytest.raises(IntegrityError, match=r"has sha256 [0-9a-f]{64}, but its model\.json says"):
        fetch(store.url, tmp_path / "new")
    assert not (tmp_path / "new").exists()

    existing = tmp_path / "existing"
    (existing).mkdir()
    (existing / "model.onnx").write_bytes(b"the model that was here")
    before = snapshot(existing)
    with pytest.raises(IntegrityError):
        fetch(store.url, existing)
    assert snapshot(existing) == before


def test_an_unchanged_model_is_not_downloaded_again(store, model_dir, tmp_path, monkeypatch):
    publish(store.url, model_dir)
    fetch(store.url, tmp_path / "dest")
    (tmp_path / "dest/model.json").write_text("{}")  # only the card is stale

    again = open_store(store.url)

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although DEST holds the model")

    monkeypatch.setattr(again, "download", no_download)
    result = fetch_model(again, "digits", tmp_path / "dest", progress=quiet)
    assert result.downloaded_bytes == 0
    assert read_card(tmp_path / "dest") == read_card(model_dir)


def test_a_changed_model_in_dest_is_replaced(store, model_dir, tmp_path):
    publish(store.url, model_dir)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.onnx").write_bytes(b"an older model")
    fetch(store.url, dest)
    assert file_sha256(dest / "model.onnx") == read_card(model_dir).sha256
    assert sorted(snapshot(dest)) == ["model.json", "model.onnx"]


# Azure specifics: the store going away, SAS permissions, secrets


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
        store = open_store(target.url, retries=1, max_concurrency=2)
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
    assert published_versions(open_store(azure_target.url), "digits") == ["1.0.0"]


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


# S3 specifics


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


# Store URLs


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
        ("relative/models", FolderLocation(Path("relative/models"))),
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


# The command line: exit codes, --json, the CI output bridge


def test_command_line_outputs(model_dir, tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    github_output, steps_output = tmp_path / "github_output", tmp_path / "outputs.json"
    env = {"GITHUB_OUTPUT": str(github_output), "STEPS_OUTPUT_FILE": str(steps_output)}
    card = read_card(model_dir)

    published = run_steps(
        "publish-model", "--json", "--store", f"file://{store_dir}", "--model-dir", str(model_dir),
        env=env,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {
        "name": "digits",
        "version": "1.0.0",
        "sha256": card.sha256,
    }

    github_output.unlink()
    dest = tmp_path / "dest"
    fetched = run_steps(
        "fetch-model", "--json", "--dest", str(dest),
        env={**env, "MODEL_STORE": str(store_dir), "MODEL_NAME": "digits"},
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    expected = {"name": "digits", "version": "1.0.0", "sha256": card.sha256, "dest": str(dest)}
    assert json.loads(fetched.stdout) == expected
    assert github_output.read_text().splitlines() == [f"{k}={v}" for k, v in expected.items()]
    assert json.loads(steps_output.read_text()) == expected
    assert "fetched digits 1.0.0" in fetched.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--store", "s3://Bad_Bucket", "--name", "digits"], 2, "is not a bucket name"),
        (["--store", "{store}", "--name", "Bad Name"], 2, "is not a model name"),
        (["--store", "{store}", "--name", "digits", "--version", "v1"], 2, "'v1' is not valid"),
        (["--store", "{store}", "--name", "digits", "--version", "7"], 4, "has no version 7"),
        (["--name", "digits"], 2, "no model store given: pass --store"),
    ],
)
def test_command_line_errors(args, code, message, model_dir, tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    publish(str(store_dir), model_dir)
    argv = [a.replace("{store}", str(store_dir)) for a in args]
    run = run_steps("fetch-model", "--dest", str(tmp_path / "dest"), *argv)
    assert run.returncode == code
    assert run.stderr.startswith("error: ") and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert run.stdout == ""


# Progress reporting


def test_progress_lines_when_not_on_a_terminal(caplog):
    with caplog.at_level("INFO", logger="steps.progress"):
        bar = Progress("download", tty=False, interval=0)
        bar.set_total(4 << 20)
        bar.advance(1 << 20)
        bar.update_to(3 << 20)
        bar.advance(-(1 << 20))  # an SDK retrying a part takes bytes back
    assert [r.getMessage() for r in caplog.records] == [
        "download: 1.00MB of 4.00MB (25%)",
        "download: 3.00MB of 4.00MB (75%)",
        "download: 2.00MB of 4.00MB (50%)",
    ]
    assert bar.done == 2 << 20


def test_progress_bar_on_a_terminal(tmp_path):
    with (
        open(tmp_path / "tty", "w") as stream,
        Progress("upload", 2048, stream=stream, tty=True) as bar,
    ):
        bar.advance(1024)
        bar.update_to(2048)
    assert "upload: 100%" in (tmp_path / "tty").read_text()
