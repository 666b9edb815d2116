"""The production server: granian's WSGI interface in front of the Flask app.

granian, an HTTP/1.1 server written in Rust, keeps client connections alive and hands each request
to the one Python thread of a worker process, so a worker runs its requests one at a time, as
gunicorn's sync workers did, without their TCP handshake and close per request
(bench/README.md, "Servers"). What the pod relies on:

- readiness: a worker opens its listener only once create_app has verified, loaded and warmed up
  the model, so its first answer is already a ready one;
- drain: SIGTERM closes the listeners and idle connections, requests in flight finish, then the
  process exits 0; a worker still busy after DRAIN_SECONDS is killed;
- a worker that exits is started again; one whose request runs past REQUEST_TIMEOUT exits
  (RequestTimeout), and is started again;
- metrics: the workers write their samples under PROMETHEUS_MULTIPROC_DIR, a folder made here in
  memory (metrics_parent) and removed at exit.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    # granian.server.Server is one of these, chosen at import (MTServer on a free-threaded Python)
    from granian.server import MPServer, MTServer

DRAIN_SECONDS = 20  # after the pod's 5 s preStop sleep, inside its 30 s grace period
# Python threads per worker: the app is CPU-bound, more threads would only take turns on the GIL.
PYTHON_THREADS = 1
TIMEOUT_EXIT = 70  # EX_SOFTWARE: a worker that ended itself over a request past REQUEST_TIMEOUT
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (mkdtemp makes a private folder in it)

SERVICE = f"{__name__}:create_served_app"
# A body the app answered without reading (a 413 above all) is read and dropped up to this many
# bytes before the answer goes out: a client that sends its whole body before reading the answer
# (Python's urllib, most simple clients) then sees the 413, not a connection reset mid-send. A
# larger body is left unread, and its sender gets the reset.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_CHUNK = 256 * 1024


def serve(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT, then drain; 0 after a clean stop."""
    metrics_dir = tempfile.mkdtemp(prefix="metrics-", dir=metrics_parent())
    # The workers are forked from this process and read their settings from the environment.
    os.environ.update(
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
        MODEL_DIR=str(settings.model_dir.resolve()),
        HOST=settings.host,
        PORT=str(settings.port),
        WORKERS=str(settings.workers),
    )
    server = granian_server(SERVICE, settings.host, settings.port, settings.workers)
    server.on_shutdown(partial(shutil.rmtree, metrics_dir, ignore_errors=True))
    server.serve()
    return 0


def metrics_parent(memory: Path = SHARED_MEMORY) -> Path | None:
    """Where the metrics folder goes: MEMORY, the tmpfs Linux and every container runtime
    provide, else the temp folder. Each worker writes its samples through mmap, and on a disk
    the kernel's writeback of those pages now and then stops a write for milliseconds (p99 at
    concurrency 8: 8.5 ms against 3.2 ms in memory; bench/README.md, "The app's own cost, third
    round"). The pod's /tmp is memory too, but `python -m aiship.app serve` on a host is not."""
    return memory if memory.is_dir() and os.access(memory, os.W_OK | os.X_OK) else None


def granian_server(target: str, host: str, port: int, workers: int) -> MPServer | MTServer:
    """granian as the service runs it: TARGET (`module:factory`, building a WSGI app in each
    worker) in WORKERS processes. The benchmarks serve their own apps through it too."""
    from granian.constants import HTTPModes, Interfaces
    from granian.server import Server

    return Server(
        target,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        workers=workers,
        blocking_threads=PYTHON_THREADS,
        factory=True,
        respawn_failed_workers=True,
        workers_kill_timeout=DRAIN_SECONDS,
    )


def create_served_app() -> WSGIApplication:
    """In each worker: the app, behind the request timeout."""
    from . import create_app

    settings = Settings.from_env(os.environ)
    served = RequestTimeout(DrainUnreadBody(create_app(settings)), settings.request_timeout)
    # What the app built to stay is never collected: kept out of the collector's full passes,
    # which otherwise stop a worker for about 12 ms each (bench/README.md, "The app's own cost,
    # third round").
    gc.freeze()
    return served


class RequestTimeout:
    """WSGI middleware: the worker exits once a request has run for longer than SECONDS.

    Nothing in Python can interrupt a thread stuck in onnxruntime or in the read of a body that
    never comes; the worker's exit ends it, and granian starts a new worker in its place.
    """

    def __init__(self, app: WSGIApplication, seconds: int):
        self.app = app
        self._seconds = seconds
        self._started: dict[int, float] = {}  # thread -> when its request began
        threading.Thread(target=self._watch, name="request-timeout", daemon=True).start()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        thread = threading.get_ident()
        self._started[thread] = time.monotonic()
        try:
            body = self.app(environ, start_response)
            # Joined here, the answer goes to granian in one call; any other iterable it would
            # pull from Rust a chunk at a time, holding this thread until the last byte is sent.
            try:
                return [b"".join(body)]
            finally:
                if hasattr(body, "close"):
                    body.close()
        finally:
            del self._started[thread]

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self._seconds / 4))
            now = time.monotonic()
            if any(now - began > self._seconds for began in list(self._started.values())):
                logging.getLogger("app").error(
                    "a request ran for over REQUEST_TIMEOUT=%s s: worker %s exits and a new one "
                    "takes its place; raise REQUEST_TIMEOUT if such requests are expected",
                    self._seconds,
                    os.getpid(),
                )
                os._exit(TIMEOUT_EXIT)


class DrainUnreadBody:
    """WSGI middleware: what the app left of the request body is read and dropped, up to LIMIT
    bytes, before its answer goes out.

    A server that answers 413 and closes while the client is still sending makes the kernel reset
    the connection, and a client that writes its whole body before reading (urllib,
    http.client) sees a broken pipe instead of the answer. Read to its end, the body was sent and
    the answer is read. The read is the request's, under REQUEST_TIMEOUT like any other.
    """

    def __init__(self, app: WSGIApplication, limit: int = DRAIN_BYTES):
        self.app, self.limit = app, limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = self.app(environ, start_response)
        if 0 < _declared_length(environ) <= self.limit:
            body, left = environ["wsgi.input"], self.limit
            while left > 0 and (chunk := body.read(min(DRAIN_CHUNK, left))):
                left -= len(chunk)
        return answer


def _declared_length(environ: WSGIEnvironment) -> int:
    """CONTENT_LENGTH; a chunked body counts as 1 (drained up to the limit), none as 0, a
    malformed length as past any limit."""
    text = environ.get("CONTENT_LENGTH") or ""
    if not text:
        return 1 if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() else 0
    return int(text) if text.isdigit() else DRAIN_BYTES + 1
