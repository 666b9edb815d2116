"""A client that keeps asking a service for predictions while something happens to it, and counts
what failed: bounded in requests and in time, stopped by leaving the `with` block."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

# The first image of scikit-learn's digits data set (a 0), as a V2 inference request.
DIGIT = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12]
DIGIT += [0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12]
DIGIT += [0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
INFER = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": DIGIT}]}


@dataclass
class Traffic:
    """POSTs one prediction after another to URL (…/v2/models/NAME/infer) on a thread."""

    url: str
    cert: tuple[str, str] | None = None  # a client certificate (the API server's proxy wants one)
    verify: str | bool = True
    max_requests: int = 20_000
    max_seconds: float = 300.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            for _ in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = session.post(  # per request: REQUESTS_CA_BUNDLE beats a session's
                        self.url, json=INFER, cert=self.cert, verify=self.verify, timeout=10
                    )
                except requests.RequestException as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}"[-160:])
                    continue
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{response.status_code} {response.text[:80]}")
                time.sleep(0.02)

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)
