"""The app for a test: create_app with small limits (so the limit paths are testable), Flask's
test client, and, for what needs a real server, `python -m aiship.app serve` on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from aiship.app import create_app
from aiship.app.settings import Settings

LIMITS = {"MAX_BATCH_SIZE": "8", "MAX_REQUEST_BYTES": "65536"}


@pytest.fixture
def app(trained_model_dir):
    """A fresh app per test, as Flask's tutorial builds one."""
    return create_app(
        Settings(
            model_dir=trained_model_dir,
            max_batch_size=int(LIMITS["MAX_BATCH_SIZE"]),
            max_request_bytes=int(LIMITS["MAX_REQUEST_BYTES"]),
            revision="test-revision",
        )
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    """Records the app's own loggers emit (they do not propagate to pytest's caplog)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def server(trained_model_dir, tmp_path_factory, serve_model) -> Iterator:
    """One real server for the session, with the same small limits."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with serve_model(trained_model_dir, log_path, **LIMITS) as running:
        yield running
