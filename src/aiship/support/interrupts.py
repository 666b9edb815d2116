"""SIGINT and SIGTERM as exceptions, so a step's clean-up runs when its job is cancelled.

A CI runner cancels a job (or ends one past its time limit) by signalling the step's process
group: GitHub's runner sends SIGINT, then SIGTERM, then SIGKILL a few seconds apart; Azure
Pipelines' agent does the same with SIGINT and SIGTERM. Python turns only SIGINT into
KeyboardInterrupt by itself: without a handler, SIGTERM ends the process on the spot and no
`finally` runs. Here both raise `Interrupted`, and `deferred()` holds further ones back while a
clean-up that must finish runs.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The process was told to stop by SIGNAL_NAME (SIGINT or SIGTERM)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by the signal: 128 + its number."""
        return 128 + signal.Signals[self.signal_name].value


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def raised_as_exceptions() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise Interrupted (in the main thread, where Python runs
    signal handlers); the handlers before are restored after."""
    with _handled_by(_raise):
        yield


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within: SIGINT and SIGTERM are noted, not raised, so the clean-up in here finishes (the
    runner's SIGKILL still ends it, so keep it short)."""

    def note(signum: int, _frame: FrameType | None) -> None:
        log.warning("%s received: finishing the clean-up first", signal.Signals(signum).name)

    with _handled_by(note):
        yield


@contextlib.contextmanager
def _handled_by(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGINT and SIGTERM go to HANDLER within, in the main thread (the only one Python lets
    set handlers: elsewhere this changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, previous in before.items():
            signal.signal(sig, previous)
