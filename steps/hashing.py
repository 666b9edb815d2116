"""SHA-256 of a file while parallel ranged downloads write it, so no second pass is needed."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import BinaryIO

READ_CHUNK = 1 << 20


class HashingWriter:
    """Wraps a file opened "w+b"; hashes the bytes in file order as the written prefix grows.

    Chunks written ahead of the hashed prefix are remembered as ranges (not bytes) and hashed from
    the file, through the page cache, once the gap before them is filled: memory stays bounded.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the digest
        self._ahead: dict[int, int] = {}  # start -> end of ranges written past the prefix
        self._lock = threading.Lock()

    def write(self, data) -> int:
        start = self._raw.tell()
        written = self._raw.write(data)
        with self._lock:
            if start == self._hashed:
                self._digest.update(memoryview(data)[:written])
                self._hashed += written
                self._catch_up()
            elif start > self._hashed:
                self._ahead[start] = start + written
            else:  # a range written again (an SDK retry): the digest cannot be trusted in order
                self._hashed = -1
        return written

    def _catch_up(self) -> None:
        if not self._ahead:
            return
        self._raw.flush()
        while self._hashed in self._ahead:
            end = self._ahead.pop(self._hashed)
            while self._hashed < end:
                size = min(READ_CHUNK, end - self._hashed)
                chunk = os.pread(self._raw.fileno(), size, self._hashed)
                if not chunk:
                    raise OSError(f"short read at {self._hashed} of a file being written")
                self._digest.update(chunk)
                self._hashed += len(chunk)

    def hexdigest(self, size: int) -> str | None:
        """The digest when exactly bytes [0, size) were written in one pass, else None."""
        with self._lock:
            complete = self._hashed == size and not self._ahead
            return self._digest.hexdigest() if complete else None

    def __getattr__(self, name: str):
        # seek, tell, seekable, flush, fileno ...: the SDKs see the file they were given.
        return getattr(self._raw, name)
