"""Bounded waiting: poll a check until it gives an answer or the time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import Unavailable

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Call `check` until it returns something other than None; Unavailable after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise Unavailable(f"{what} within {timeout:g} s")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
