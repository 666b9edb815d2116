"""SHA-256 of a file while parallel ranged downloads write it, so no second pass is needed."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

READ_CHUNK = 4 << 20


class HashingWriter:
    """Wraps an unbuffered file opened "w+b"; a thread hashes it in file order as it is written.

    The thread reads each range back through the page cache once the ranges before it are in,
    so the SDK's download threads never wait for the digest (they write under a lock of theirs)
    and memory stays bounded whatever the write order. Use it as a context manager; the digest
    is ready when the block ends.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the digest
        self._ranges: dict[int, int] = {}  # start -> end of ranges written, not yet digested
        self._written = 0  # bytes written in all, rewrites (an SDK retry) included
        self._failed = False
        self._closing = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._hash_in_order, name="sha256", daemon=True)

    def __enter__(self) -> HashingWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._closing = True
            self._failed |= exc_info[0] is not None  # no digest wanted: stop at once
            self._changed.notify()
        self._thread.join()

    def write(self, data: ReadableBuffer) -> int:
        start = self._raw.tell()
        written = self._raw.write(data)
        with self._changed:
            self._ranges[start] = start + written
            self._written += written
            self._changed.notify()
        return written

    def hexdigest(self, size: int) -> str | None:
        """The digest when exactly bytes [0, size) were written, each once; else None."""
        with self._changed:
            once = self._hashed == size == self._written and not self._failed
            return self._digest.hexdigest() if once else None

    def _hash_in_order(self) -> None:
        fd = self._raw.fileno()
        while True:
            with self._changed:
                while self._hashed not in self._ranges and not self._closing:
                    self._changed.wait()
                end = self._ranges.pop(self._hashed, None)
                if end is None or self._failed:
                    return
            position = self._hashed  # only this thread moves _hashed
            while position < end:
                try:
                    chunk = os.pread(fd, min(READ_CHUNK, end - position), position)
                except OSError:
                    chunk = b""
                if not chunk:  # cannot happen to a file we wrote; the caller re-hashes
                    with self._changed:
                        self._failed = True
                    return
                self._digest.update(chunk)
                position += len(chunk)
            with self._changed:
                self._hashed = end

    def __getattr__(self, name: str) -> Any:
        # seek, tell, seekable, flush, fileno ...: the SDKs see the file they were given.
        return getattr(self._raw, name)
