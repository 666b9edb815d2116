"""publish-model and fetch-model on every store backend: round trip, versions, immutability,
integrity."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aiship.app.card import GoldenSet, file_sha256, read_card, write_card
from aiship.clients.stores import open_model_store, open_store
from aiship.commands.model_store import publish_model, published_versions
from aiship.support.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    NotFound,
    Unavailable,
)
from tests.clirun import run_steps
from tests.stores import fetch, padded_model, publish, quiet, snapshot


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
    golden = (model_dir / "golden.jsonl").read_bytes()
    assert (tmp_path / "dest/golden.jsonl").read_bytes() == golden
    assert fetched.downloaded_bytes == sum(
        (model_dir / file).stat().st_size for file in ("model.onnx", "golden.jsonl")
    )
    assert sorted(snapshot(tmp_path / "dest")) == ["golden.jsonl", "model.json", "model.onnx"]


def test_a_big_model_is_hashed_on_the_way_in(store, big_model_dir, tmp_path, monkeypatch):
    """Parallel ranged writes land out of order; the digest still needs no second pass."""
    publish(store.url, big_model_dir)

    def second_pass(path):
        raise AssertionError(f"{path} was read again to hash it")

    monkeypatch.setattr("aiship.commands.model_store.file_sha256", second_pass)
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

    assert published_versions(open_model_store(store.url), "digits") == ["1.2", "1.9.0", "1.10.0"]
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
    backend = open_model_store(store.url)
    create = backend.objects.create

    def card_upload_fails(key, source, size, progress):
        if key.endswith("model.json"):
            raise Unavailable(f"{backend.objects.describe(key)} could not be reached: test")
        create(key, source, size, progress)

    monkeypatch.setattr(backend.objects, "create", card_upload_fails)
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


def test_a_damaged_golden_set_fails_and_places_nothing(store, model_dir, tmp_path):
    """The model verifies, the golden set does not: DEST gets neither, nor the card."""
    publish(store.url, model_dir)
    store.put("digits/1.0.0/golden.jsonl", b'{"inputs": {"input": [0]}, "target": "7"}\n')
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "model.onnx").write_bytes(b"the model that was here")
    before = snapshot(existing)
    with pytest.raises(IntegrityError, match=r"golden\.jsonl.* has sha256 [0-9a-f]{64}, but its"):
        fetch(store.url, existing)
    assert snapshot(existing) == before


def test_a_golden_set_that_does_not_match_its_card_is_not_published(store, model_dir):
    with open(model_dir / "golden.jsonl", "a") as golden:
        golden.write('{"inputs": {"input": [1]}, "target": "1"}\n')
    with pytest.raises(ConfigError, match=r"golden\.jsonl has sha256 .* but model\.json says"):
        publish(store.url, model_dir)
    assert published_versions(open_model_store(store.url), "digits") == []


def test_an_unchanged_model_is_verified_and_left_in_place(store, model_dir, tmp_path):
    publish(store.url, model_dir)
    dest = tmp_path / "dest"
    fetch(store.url, dest)
    (dest / "model.json").write_text("{}")  # only the card is stale
    before = {f: (dest / f).stat().st_ino for f in ("model.onnx", "golden.jsonl")}

    result = fetch(store.url, dest)
    assert result.placed == ("model.json",) and result.downloaded_bytes > 0
    assert {f: (dest / f).stat().st_ino for f in before} == before  # not replaced
    assert read_card(dest) == read_card(model_dir)
    assert fetch(store.url, dest).placed == ()


@pytest.mark.parametrize("file", ["golden.jsonl", "model.onnx"])
def test_a_file_changed_in_the_store_is_refused_whether_or_not_dest_was_warm(
    store, model_dir, tmp_path, file
):
    """A warm DEST (the version fetched before the store changed) proves nothing about the
    store: the same refusal as into an empty folder, and DEST left as it was."""
    publish(store.url, model_dir)
    warm = tmp_path / "warm"
    fetch(store.url, warm)
    before = snapshot(warm)
    changed = bytearray((model_dir / file).read_bytes())
    changed[10] ^= 0x01  # same size: only the digest can tell
    store.put(f"digits/1.0.0/{file}", bytes(changed))

    refusals = []
    for dest in (tmp_path / "cold", warm):
        with pytest.raises(IntegrityError) as refused:
            fetch(store.url, dest)
        refusals.append(str(refused.value))
    assert refusals[0] == refusals[1]
    assert f"{file} " in refusals[0] and ", but its model.json says" in refusals[0]
    assert snapshot(warm) == before and not (tmp_path / "cold").exists()


def test_dest_holds_exactly_the_version_fetched(store, model_dir, tmp_path):
    """Same weights, another golden set, then no golden set and a card written by another tool:
    DEST follows each version's files and card byte for byte, never keeping another's rows."""
    publish(store.url, model_dir)
    rows = (model_dir / "golden.jsonl").read_bytes().splitlines(keepends=True)
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    (other / "golden.jsonl").write_bytes(b"".join(rows[:20]))
    card = read_card(other)
    golden = GoldenSet(file_sha256(other / "golden.jsonl"), 20)
    write_card(other, dataclasses.replace(card, version="1.1", golden=golden))
    publish(store.url, other)
    dest = tmp_path / "dest"
    fetch(store.url, dest, version="1.0.0")
    model = (dest / "model.onnx").stat().st_ino

    assert fetch(store.url, dest, version="1.1").placed == ("golden.jsonl", "model.json")
    assert (dest / "golden.jsonl").read_bytes() == b"".join(rows[:20])
    assert (dest / "model.onnx").stat().st_ino == model

    no_golden = dataclasses.replace(card, version="1.2", golden=None).to_dict()
    stored = json.dumps(no_golden, separators=(",", ":")).encode()  # not our formatting
    store.put("digits/1.2/model.onnx", (model_dir / "model.onnx").read_bytes())
    store.put("digits/1.2/model.json", stored)
    assert fetch(store.url, dest).placed == ("golden.jsonl", "model.json")
    assert sorted(snapshot(dest)) == ["model.json", "model.onnx"]
    assert (dest / "model.json").read_bytes() == stored


def test_a_changed_model_in_dest_is_replaced(store, model_dir, tmp_path):
    publish(store.url, model_dir)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "model.onnx").write_bytes(b"an older model")
    fetch(store.url, dest)
    assert file_sha256(dest / "model.onnx") == read_card(model_dir).sha256
    assert sorted(snapshot(dest)) == ["golden.jsonl", "model.json", "model.onnx"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--store", "s3://Bad_Bucket", "--name", "digits"], 2, "is not a bucket name"),
        (["--store", "{store}", "--name", "Bad Name"], 2, "is not a model name"),
        (["--store", "{store}", "--name", "digits", "--version", "v1"], 2, "'v1' is not valid"),
        (["--store", "{store}", "--name", "digits", "--version", "7"], 4, "has no version 7"),
        (["--name", "digits"], 2, "no model store given: pass --store"),
        (["--store", "{store}", "--name", "digits", "--version", "@Bad"], 2, "'Bad' is not valid"),
        (["--store", "{store}", "--name", "digits", "--version", "@prod"], 2, "has no aliases"),
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
