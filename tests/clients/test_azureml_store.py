"""azureml:// model stores: the real azure-ai-ml SDK against the local workspace and registry
stand-ins, the model's bytes in a real Azurite behind them (tests/azureml_fake.py). Every test
with the `azureml` fixture runs once for each form."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

from aiship.app.card import GOLDEN_FILE, MODEL_FILE, file_sha256, read_card
from aiship.clients.stores import open_model_store
from aiship.clients.stores.azure_blob import DEV_ACCOUNT_KEY
from aiship.commands.model_store import fetch_model, publish_model
from aiship.support.errors import ConfigError, Conflict, IntegrityError, NotFound

# The stand-in's fixtures, `azureml` and `azureml_data_path`.
from tests.azureml_fake import azureml_fixture, data_path_fixture  # noqa: F401
from tests.clirun import run_steps
from tests.stores import quiet, snapshot

# Every address this process connects to while a test records it (audit hooks cannot be removed,
# so one hook, installed once, appends to whichever list is current).
_CONNECTS: list[list[object]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _CONNECTS:
        _CONNECTS[-1].append(args[1])


@pytest.fixture
def connects() -> list[object]:
    if not getattr(sys, "_aiship_azureml_audit", False):
        sys.addaudithook(_audit)
        sys._aiship_azureml_audit = True
    addresses: list[object] = []
    _CONNECTS.append(addresses)
    yield addresses
    _CONNECTS.remove(addresses)


def publish(url: str, model_dir: Path, version: str | None = None, alias: str = ""):
    return publish_model(
        open_model_store(url, retries=0), model_dir, version, alias=alias, progress=quiet
    )


def fetch(url: str, dest: Path, version: str = "latest"):
    return fetch_model(open_model_store(url, retries=0), "digits", dest, version, progress=quiet)


def test_round_trip_latest_label_and_only_loopback(azureml, trained_model_dir, tmp_path, connects):
    card = read_card(trained_model_dir)
    publish(azureml.store_url, trained_model_dir, "1.0")
    published = publish(azureml.store_url, trained_model_dir, "1.2.0", alias="production")

    latest = fetch(azureml.store_url, tmp_path / "latest")
    assert (latest.version, latest.sha256) == ("1.2.0", card.sha256)
    for file in (MODEL_FILE, GOLDEN_FILE):
        assert (tmp_path / "latest" / file).read_bytes() == (trained_model_dir / file).read_bytes()
    assert fetch(azureml.store_url, tmp_path / "label", "@production").version == "1.2.0"
    assert fetch(azureml.store_url, tmp_path / "old", "1.0.0").version == "1.0"

    # One model asset per version: a custom_model folder on the datastore, tagged with the card.
    resource = azureml.models[("digits", "1.2.0")]["properties"]
    assert resource["modelType"] == "custom_model"
    # A registry's API has no stage field: the stage is a tag there.
    stage = resource["tags"]["stage"] if azureml.form == "registry" else resource["stage"]
    assert stage == "production"
    assert (
        resource["tags"]["sha256"]
        == published.sha256
        == file_sha256(trained_model_dir / MODEL_FILE)
    )
    assert resource["tags"]["version"] == "1.2.0"
    assert resource["tags"]["golden.sha256"] == card.golden.sha256
    assert {f"metric.{key}" for key in card.metrics} <= set(resource["tags"])
    folder = azureml.folder("digits", "1.2.0")
    assert {f"{folder}/{f}" for f in (MODEL_FILE, GOLDEN_FILE, "model.json")} <= set(
        azureml.blob_names()
    )
    # Telemetry is off: every connection went to this machine's loopback.
    hosts = {address[0] for address in connects if isinstance(address, tuple)}
    assert hosts and all(ipaddress.ip_address(host).is_loopback for host in hosts), hosts
    assert all(
        target.endswith(".blob.core.localhost:" + target.rsplit(":", 1)[1])
        for target in azureml.data.proxy.asked
    )


def test_a_version_or_label_that_does_not_exist(azureml, trained_model_dir, tmp_path):
    with pytest.raises(NotFound, match="no published version"):
        fetch(azureml.store_url, tmp_path / "none")
    publish(azureml.store_url, trained_model_dir, "1.0")
    with pytest.raises(NotFound, match=r"no version 2\.0"):
        fetch(azureml.store_url, tmp_path / "missing", "2.0")
    with pytest.raises(NotFound, match="stage 'production'"):
        fetch(azureml.store_url, tmp_path / "label", "@production")
    assert not (tmp_path / "missing").exists()


def test_publish_of_an_existing_version_is_refused_before_any_upload(azureml, trained_model_dir):
    publish(azureml.store_url, trained_model_dir, "1.2.0")
    blobs, calls = azureml.blob_names(), len(azureml.calls)
    done = run_steps(
        "publish-model",
        "--store",
        azureml.store_url,
        "--model-dir",
        str(trained_model_dir),
        "--version",
        "1.2",
        "--retries",
        "0",
    )
    assert done.returncode == 5, done.stderr
    assert "1.2 already exists (as 1.2.0)" in done.stderr
    assert azureml.blob_names() == blobs
    assert not any(call.startswith("PUT") for call in azureml.calls[calls:])


def test_a_publish_that_loses_a_race_is_a_conflict(azureml, trained_model_dir, model_dir):
    # Another publisher registers 2.0 with other files after our check: the service refuses to
    # change the version's path, and nothing of ours becomes visible.
    publish(azureml.store_url, trained_model_dir, "1.0")
    theirs = dict(azureml.models.pop(("digits", "1.0")))
    theirs["properties"] = {
        **theirs["properties"],
        "modelUri": "azureml://datastores/x/paths/theirs",
    }
    azureml.raced[("digits", "2.0")] = theirs
    with pytest.raises(Conflict, match="already exists"):
        publish(azureml.store_url, model_dir, "2.0")
    assert azureml.models[("digits", "2.0")]["properties"]["modelUri"].endswith("theirs")


def test_a_corrupted_download_leaves_dest_untouched(azureml, trained_model_dir, tmp_path):
    publish(azureml.store_url, trained_model_dir, "1.0")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    before = snapshot(dest)
    azureml.overwrite("digits", "1.0", MODEL_FILE, b"not the model")
    with pytest.raises(IntegrityError, match="damaged"):
        fetch(azureml.store_url, dest)
    assert snapshot(dest) == before


def test_alias_latest_cannot_be_set(azureml, trained_model_dir):
    with pytest.raises(ConfigError):
        publish(azureml.store_url, trained_model_dir, "1.0", alias="latest")
    assert azureml.blob_names() == []


@pytest.mark.parametrize(
    ("mode", "code", "words"),
    [
        ("down", 7, "unavailable (503)"),
        ("refused", 3, "rejected the credentials"),
        ("denied", 3, "the role"),
    ],
)
def test_control_plane_failures_exit_with_their_code(azureml, tmp_path, mode, code, words):
    if mode == "denied":  # the built-in role that grants it where the model lives
        role = "AzureML Registry User" if azureml.form == "registry" else "AzureML Data Scientist"
        words = f"{words} {role!r}"
    azureml.mode = mode
    done = run_steps(
        "fetch-model",
        "--store",
        azureml.store_url,
        "--name",
        "digits",
        "--dest",
        str(tmp_path / "dest"),
        "--retries",
        "1",
    )
    assert done.returncode == code, done.stderr
    assert words in done.stderr
    assert len(done.stderr.strip().splitlines()[-1]) < 400
    log = done.stdout + done.stderr
    assert DEV_ACCOUNT_KEY not in log
    assert not any(token in log for token in azureml.tokens)


def test_no_secret_in_the_logs_of_a_publish_and_fetch(azureml, trained_model_dir, tmp_path):
    published = run_steps(
        "publish-model",
        "--store",
        azureml.store_url,
        "--model-dir",
        str(trained_model_dir),
        "--alias",
        "production",
        "--retries",
        "0",
    )
    assert published.returncode == 0, published.stderr
    fetched = run_steps(
        "fetch-model",
        "--store",
        azureml.store_url,
        "--name",
        "digits",
        "--version",
        "@production",
        "--dest",
        str(tmp_path / "dest"),
        "--retries",
        "0",
    )
    assert fetched.returncode == 0, fetched.stderr
    log = published.stdout + published.stderr + fetched.stdout + fetched.stderr
    assert DEV_ACCOUNT_KEY not in log
    assert azureml.tokens and not any(token in log for token in azureml.tokens)
    assert (tmp_path / "dest" / MODEL_FILE).read_bytes() == (
        trained_model_dir / MODEL_FILE
    ).read_bytes()


def test_store_urls():
    from aiship.clients.stores.azureml import Registry, Workspace, parse_azureml_url

    workspace = parse_azureml_url("azureml://subscriptions/s/resourceGroups/g/workspaces/w")
    assert workspace == Workspace("s", "g", "w")
    assert parse_azureml_url("azureml://registries/r") == Registry("r")
    for bad in (
        "azureml://registries",
        "azureml://registries/r/models",
        "azureml://subscriptions/s/workspaces/w",
        "azureml://registries/r?x=1",
    ):
        with pytest.raises(ConfigError):
            parse_azureml_url(bad)
