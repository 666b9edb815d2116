"""HashingWriter: the sha256 of a file written in any order, without a second pass."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from aiship.support.hashing import HashingWriter

DATA = os.urandom(5 * 1000 + 7)
CHUNKS = [(start, DATA[start : start + 1000]) for start in range(0, len(DATA), 1000)]


def write(tmp_path, order) -> HashingWriter:
    with open(tmp_path / "out", "w+b", buffering=0) as raw, HashingWriter(raw) as out:
        for index in order:
            start, chunk = CHUNKS[index]
            out.seek(start)
            out.write(chunk)
    return out


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 2, 4], [1, 2, 3, 4, 5, 0]])
def test_any_write_order_gives_the_file_digest(tmp_path, order):
    out = write(tmp_path, order)
    assert (tmp_path / "out").read_bytes() == DATA
    assert out.hexdigest(len(DATA)) == hashlib.sha256(DATA).hexdigest()


def test_writes_from_many_threads_give_the_file_digest(tmp_path):
    """As the SDKs write: parallel ranges, each seek+write under one lock, in any order."""
    data = os.urandom(64 * 4096)
    lock = threading.Lock()

    def put(start: int) -> None:
        with lock:
            out.seek(start)
            out.write(data[start : start + 4096])

    with (
        open(tmp_path / "out", "w+b", buffering=0) as raw,
        HashingWriter(raw) as out,
        ThreadPoolExecutor(8) as pool,
    ):
        list(pool.map(put, random.sample(range(0, len(data), 4096), 64)))
    assert out.hexdigest(len(data)) == hashlib.sha256(data).hexdigest()


def test_a_failed_download_gives_no_digest(tmp_path):
    with (
        pytest.raises(OSError),
        open(tmp_path / "out", "w+b", buffering=0) as raw,
        HashingWriter(raw) as out,
    ):
        out.write(DATA)
        raise OSError("the store went away")
    assert out.hexdigest(len(DATA)) is None


def test_a_gap_or_a_rewrite_gives_no_digest(tmp_path):
    assert write(tmp_path, [0, 1, 3, 4, 5]).hexdigest(len(DATA)) is None
    assert write(tmp_path, [0, 1, 2, 1, 3, 4, 5]).hexdigest(len(DATA)) is None
    assert write(tmp_path, [0, 1, 2]).hexdigest(len(DATA)) is None
