"""Progress of a long transfer: a tqdm bar on a terminal, a log line every few seconds in CI."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)

# CI logs keep every line: one every 10 s is enough to see that a transfer moves.
LOG_INTERVAL = 10.0


class Progress:
    """A thread-safe byte counter that reports itself; SDKs call back from their worker threads."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = LOG_INTERVAL,
    ) -> None:
        stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.done = 0
        self._interval = interval
        self._last_log = time.monotonic()
        self._lock = threading.Lock()
        on_terminal = stream.isatty() if tty is None else tty
        self._bar = (
            tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=stream)
            if on_terminal
            else None
        )

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()

    def advance(self, amount: int) -> None:
        """Count `amount` more bytes (negative when an SDK retries a part)."""
        with self._lock:
            self._move(self.done + amount)

    def update_to(self, done: int, total: int | None = None) -> None:
        """Set the count of bytes done so far (the Azure SDK's progress_hook calls this)."""
        with self._lock:
            if total is not None and total != self.total:
                self.total = total
                if self._bar is not None:
                    self._bar.total = total
            self._move(done)

    def _move(self, done: int) -> None:
        step, self.done = done - self.done, done
        if self._bar is not None:
            self._bar.update(step)
        elif time.monotonic() - self._last_log >= self._interval:
            self._last_log = time.monotonic()
            log.info("%s: %s", self.label, self.describe())

    def describe(self) -> str:
        done: str = tqdm.format_sizeof(self.done, "B", 1024)
        if not self.total:
            return done
        total: str = tqdm.format_sizeof(self.total, "B", 1024)
        return f"{done} of {total} ({100 * self.done // self.total}%)"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def track(label: str, total: int | None = None) -> Progress:
    """The progress reporter for stderr: a bar on a terminal, log lines otherwise."""
    return Progress(label, total)
