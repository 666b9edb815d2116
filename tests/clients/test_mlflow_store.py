"""The MLflow Model Registry as a model store, against a real `mlflow server` (the bench's
pinned MLflow): publish-model and fetch-model through it, aliases, a publish race, a damaged
artifact, a server that is down, refused credentials, and secrets kept out of the logs."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from aiship.app.card import file_sha256, read_card, write_card
from aiship.clients.stores import open_model_store
from aiship.clients.stores.mlflow import MLflowStore
from aiship.commands.model_store import fetch_model, publish_model
from aiship.support.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    NotFound,
    StepError,
    Unavailable,
)
from aiship.support.ports import free_port
from tests.clirun import run_steps
from tests.mlflow_server import (
    ADMIN,
    MLflowServer,
    add_user,
    mlflow_auth_server,
    mlflow_server,
)
from tests.stores import quiet, snapshot

API = "api/2.0/mlflow"
NO_MLFLOW_SETTINGS = ("MLFLOW_",)  # the CLI runs see only the credentials a test gives them


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory) -> Iterator[MLflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def named_model(model_dir) -> tuple[str, Path]:
    """The sample model under a name of its own: the tests share one server."""
    name = f"m-{uuid.uuid4().hex[:10]}"
    write_card(model_dir, dataclasses.replace(read_card(model_dir), name=name))
    return name, model_dir


@pytest.fixture(autouse=True)
def no_mlflow_credentials(monkeypatch) -> None:
    for variable in ("TOKEN", "USERNAME", "PASSWORD", "SERVER_CERT_PATH"):
        monkeypatch.delenv(f"MLFLOW_TRACKING_{variable}", raising=False)


def registry_versions(server: MLflowServer, name: str, **auth) -> list[dict]:
    """NAME's MLflow versions as the server lists them, lowest number first."""
    response = requests.get(
        f"{server.url}/{API}/model-versions/search",
        params={"filter": f"name='{name}'"},
        timeout=10,
        **auth,
    )
    response.raise_for_status()
    found = response.json().get("model_versions", [])
    return sorted(found, key=lambda v: int(v["version"]))


def tags(version: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in version.get("tags", [])}


def artifact_folder(server: MLflowServer, version: dict) -> Path:
    """Where the server keeps VERSION's files: its source, mlflow-artifacts:/EXP/RUN/artifacts."""
    return server.artifacts / version["source"].removeprefix("mlflow-artifacts:").strip("/")


def experiment_id(server: MLflowServer) -> str:
    """The experiment the store keeps its runs in."""
    response = requests.get(
        f"{server.url}/{API}/experiments/get-by-name",
        params={"experiment_name": "aiship-models"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["experiment"]["experiment_id"]


def run_state(server: MLflowServer, run_id: str) -> str:
    response = requests.get(f"{server.url}/{API}/runs/get", params={"run_id": run_id}, timeout=10)
    response.raise_for_status()
    return response.json()["run"]["info"]["lifecycle_stage"]


def test_round_trip_through_publish_and_fetch(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    card = read_card(model_dir)
    published = publish_model(open_model_store(mlflow.store), model_dir, progress=quiet)
    assert (published.name, published.version, published.sha256) == (name, "1.0.0", card.sha256)

    dest = tmp_path / "dest"
    fetched = fetch_model(open_model_store(mlflow.store), name, dest, progress=quiet)
    assert (fetched.version, fetched.sha256) == ("1.0.0", card.sha256)
    for file in ("model.onnx", "golden.jsonl"):
        assert (dest / file).read_bytes() == (model_dir / file).read_bytes()
    assert read_card(dest) == card

    # In MLflow: version 1 of the registered model, our version and every file's sha256 as
    # tags, the files in the run's artifacts behind the proxy, the run finished.
    [version] = registry_versions(mlflow, name)
    folder = artifact_folder(mlflow, version)
    assert version["version"] == "1"
    assert tags(version) == {
        "aiship.version": "1.0.0",
        "aiship.complete": "true",
        "aiship.sha256.model.onnx": card.sha256,
        "aiship.sha256.golden.jsonl": file_sha256(model_dir / "golden.jsonl"),
        "aiship.sha256.model.json": file_sha256(folder / "model.json"),
    }
    assert sorted(p.name for p in folder.iterdir()) == ["golden.jsonl", "model.json", "model.onnx"]
    assert run_state(mlflow, version["run_id"]) == "active"
    store = open_model_store(mlflow.store)
    store.versions(name)
    assert store.describe(name, "1.0.0", "model.onnx") == (
        f"model.onnx of models:/{name}/1 (version 1.0.0) in MLflow registry {mlflow.url}"
    )


def test_latest_is_the_numerically_highest_version(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    store = open_model_store(mlflow.store)
    for version in ("1.2", "1.10", "1.9"):
        publish_model(store, model_dir, version, progress=quiet)
    assert sorted(store.versions(name)) == ["1.10", "1.2", "1.9"]
    fetched = fetch_model(store, name, tmp_path / "dest", progress=quiet)
    assert fetched.version == "1.10"
    assert read_card(tmp_path / "dest").version == "1.10"


def test_a_version_that_does_not_exist_names_the_newest(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    store = open_model_store(mlflow.store)
    for version in ("1.2", "1.10"):
        publish_model(store, model_dir, version, progress=quiet)
    with pytest.raises(NotFound, match=r"no version 2\.0 .*\(newest: 1\.10, 1\.2\)") as caught:
        fetch_model(store, name, tmp_path / "dest", "2.0", progress=quiet)
    assert mlflow.url in str(caught.value)
    assert not (tmp_path / "dest").exists()
    with pytest.raises(NotFound, match="no published version"):
        fetch_model(store, f"{name}-never", tmp_path / "dest", progress=quiet)


def test_alias_through_the_command_line(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    common = ("--store", mlflow.store)
    publish = ("publish-model", *common, "--model-dir", str(model_dir))
    done = run_steps(*publish, "--version", "1.0", "--alias", "champion", drop=NO_MLFLOW_SETTINGS)
    assert done.returncode == 0, done.stderr
    done = run_steps(*publish, "--version", "2.0", drop=NO_MLFLOW_SETTINGS)
    assert done.returncode == 0, done.stderr

    fetch = ("fetch-model", *common, "--name", name)
    done = run_steps(
        *fetch, "--version", "@champion", "--dest", str(tmp_path / "a"), drop=NO_MLFLOW_SETTINGS
    )
    assert done.returncode == 0, done.stderr
    assert read_card(tmp_path / "a").version == "1.0"  # not 2.0, the latest
    aliased = requests.get(
        f"{mlflow.url}/{API}/registered-models/alias",
        params={"name": name, "alias": "champion"},
        timeout=10,
    ).json()["model_version"]
    assert (aliased["version"], tags(aliased)["aiship.version"]) == ("1", "1.0")

    done = run_steps(
        *fetch, "--version", "@nobody", "--dest", str(tmp_path / "b"), drop=NO_MLFLOW_SETTINGS
    )
    assert done.returncode == 4
    assert "alias @nobody" in done.stderr and mlflow.url in done.stderr
    assert not (tmp_path / "b").exists()


def test_an_alias_mlflow_would_refuse_stops_the_publish_before_anything_is_stored(
    mlflow, named_model
):
    name, model_dir = named_model
    with pytest.raises(ConfigError, match="reserves"):
        publish_model(open_model_store(mlflow.store), model_dir, alias="v2", progress=quiet)
    assert registry_versions(mlflow, name) == []


def test_a_publish_race_has_exactly_one_winner(mlflow, named_model):
    """Both publishes pass the check before either claims the version; the one MLflow numbers
    higher sees the other's claim, takes its own back and fails."""
    name, model_dir = named_model
    both_checked = threading.Barrier(2, timeout=60)
    stores = [open_model_store(mlflow.store) for _ in range(2)]
    for store in stores:
        claim = store._claim

        def claim_after_both_checked(*args, _claim=claim):
            both_checked.wait()
            return _claim(*args)

        store._claim = claim_after_both_checked

    def attempt(store) -> object:
        try:
            return publish_model(store, model_dir, progress=quiet)
        except StepError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, stores))
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "PublishedModel"]
    # The winner's version alone remains: the loser took its claim back.
    [version] = registry_versions(mlflow, name)
    assert tags(version)["aiship.complete"] == "true"
    assert open_model_store(mlflow.store).versions(name) == ["1.0.0"]


def test_published_or_unfinished_versions_are_refused(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    store = open_model_store(mlflow.store)
    publish_model(store, model_dir, "1.2", progress=quiet)
    with pytest.raises(Conflict, match="already exists"):
        publish_model(store, model_dir, "1.2.0", progress=quiet)

    # What a publish killed half-way leaves: a claim without the complete tag. Readers do not
    # see it, and no one may publish that version while it is there.
    run = requests.post(
        f"{mlflow.url}/{API}/runs/create", json={"experiment_id": experiment_id(mlflow)}, timeout=10
    ).json()["run"]["info"]
    claim = {
        "name": name,
        "source": run["artifact_uri"],
        "run_id": run["run_id"],
        "tags": [{"key": "aiship.version", "value": "3.0"}],
    }
    requests.post(f"{mlflow.url}/{API}/model-versions/create", json=claim, timeout=10)
    assert store.versions(name) == ["1.2"]
    with pytest.raises(Conflict, match=rf"version 3 is being published as models:/{name}/2"):
        store.publish(name, "3", {}, b"{}", quiet)
    assert fetch_model(store, name, tmp_path / "dest", progress=quiet).version == "1.2"


def test_a_failed_publish_leaves_no_version_behind(mlflow, named_model):
    name, model_dir = named_model

    def failing(label: str):
        if label == "upload model.json":
            raise Unavailable("the network went away")
        return quiet(label)

    store = open_model_store(mlflow.store)
    with pytest.raises(Unavailable, match="network went away"):
        publish_model(store, model_dir, progress=failing)
    assert registry_versions(mlflow, name) == []
    search = {"experiment_ids": [experiment_id(mlflow)], "filter": f"run_name = '{name}-1.0.0'"}
    runs = requests.post(f"{mlflow.url}/{API}/runs/search", json=search, timeout=10)
    assert runs.json().get("runs", []) == []  # its run is deleted (search lists active runs)
    # Nothing blocks publishing that version again.
    assert publish_model(store, model_dir, progress=quiet).version == "1.0.0"


def test_a_damaged_artifact_is_refused_and_dest_left_as_it_was(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    store = open_model_store(mlflow.store)
    publish_model(store, model_dir, "1.0", progress=quiet)
    publish_model(store, model_dir, "2.0", progress=quiet)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.onnx").write_bytes(b"the model that serves now")
    (dest / "notes.txt").write_text("not the store's\n")
    before = snapshot(dest)

    [_, second] = registry_versions(mlflow, name)
    stored = artifact_folder(mlflow, second) / "model.onnx"
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size: only the digest can tell
    stored.write_bytes(bytes(damaged))

    with pytest.raises(IntegrityError, match=rf"model\.onnx of models:/{name}/2 \(version 2\.0\)"):
        fetch_model(store, name, dest, progress=quiet)
    assert snapshot(dest) == before


def test_a_server_that_is_down_is_one_line_and_exit_7(tmp_path):
    url = f"mlflow+http://127.0.0.1:{free_port()}"
    done = run_steps(
        "fetch-model", "--store", url, "--name", "digits", "--dest", str(tmp_path / "dest"),
        "--retries", "1",
        drop=NO_MLFLOW_SETTINGS,
    )  # fmt: skip
    assert done.returncode == 7
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "did not answer (Connection refused)" in errors[0]
    assert url.removeprefix("mlflow+") in errors[0]
    assert "Traceback" not in done.stderr


def test_a_url_that_does_not_serve_mlflow_is_not_found(mlflow):
    with pytest.raises(NotFound, match="does not serve MLflow's REST API"):
        open_model_store(f"{mlflow.store}/not-mlflow").versions("digits")


def test_a_server_without_the_artifact_proxy_is_refused(named_model, tmp_path):
    name, model_dir = named_model
    no_proxy = ("--no-serve-artifacts", "--default-artifact-root", (tmp_path / "runs").as_uri())
    with mlflow_server(tmp_path / "mlflow", options=no_proxy) as server:
        with pytest.raises(ConfigError, match="--serve-artifacts"):
            publish_model(open_model_store(server.store), model_dir, progress=quiet)
        assert registry_versions(server, name) == []


def test_store_urls_that_are_refused():
    with pytest.raises(ConfigError, match="no credentials in the URL"):
        open_model_store("mlflow+http://user:secret@127.0.0.1:5000")
    with pytest.raises(ConfigError, match="takes no query"):
        open_model_store("mlflow+https://mlflow.example/?token=abc")
    with pytest.raises(ConfigError, match="go together"):
        MLflowStore.from_url("mlflow+http://127.0.0.1:5000", env={"MLFLOW_TRACKING_USERNAME": "u"})


def test_the_token_is_masked_and_never_logged(mlflow, named_model, tmp_path):
    name, model_dir = named_model
    token = f"token-{uuid.uuid4().hex}"
    outputs = tmp_path / "github_output"
    env = {"MLFLOW_TRACKING_TOKEN": token, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs)}
    done = run_steps(
        "publish-model", "-v", "--store", mlflow.store, "--model-dir", str(model_dir),
        env=env, drop=NO_MLFLOW_SETTINGS,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    masked = f"::add-mask::{token}"
    assert masked in done.stdout.splitlines()
    assert token not in done.stdout.replace(masked, "")
    assert token not in done.stderr
    assert token not in outputs.read_text()
    assert token not in mlflow.log.read_text()
    assert registry_versions(mlflow, name)  # it did publish, with the token sent


@pytest.fixture(scope="module")
def auth_mlflow(tmp_path_factory) -> Iterator[MLflowServer]:
    with mlflow_auth_server(tmp_path_factory.mktemp("mlflow-auth")) as server:
        yield server


def test_credentials_refused_or_short_of_permission(auth_mlflow, named_model, tmp_path):
    name, model_dir = named_model
    admin = MLflowStore.from_url(
        auth_mlflow.store,
        env={"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]},
    )
    publish_model(admin, model_dir, "1.0", progress=quiet)
    add_user(auth_mlflow, "reader", "reader-password-for-tests")

    def as_user(user: str, password: str, *args: str):
        env = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
        done = run_steps(*args, "--store", auth_mlflow.store, env=env, drop=NO_MLFLOW_SETTINGS)
        assert password not in done.stdout + done.stderr
        return done

    fetch = ("fetch-model", "--name", name)
    wrong = as_user(ADMIN[0], "not-the-password", *fetch, "--dest", str(tmp_path / "a"))
    assert wrong.returncode == 3
    assert "refused the credentials" in wrong.stderr and "MLFLOW_TRACKING_PASSWORD" in wrong.stderr

    reader = ("reader", "reader-password-for-tests")
    done = as_user(*reader, *fetch, "--dest", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    assert read_card(tmp_path / "b").version == "1.0"

    denied = as_user(*reader, "publish-model", "--model-dir", str(model_dir), "--version", "2.0")
    assert denied.returncode == 3
    assert "denied permission to publish" in denied.stderr and "EDIT" in denied.stderr
    listed = registry_versions(auth_mlflow, name, auth=ADMIN)
    assert [tags(v)["aiship.version"] for v in listed] == ["1.0"]
