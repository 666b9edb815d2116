"""The session's server: real gunicorn on 127.0.0.1, with small limits to test them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def server(trained_model_dir, tmp_path_factory, serve_model) -> Iterator:
    """One server for the whole session, with small limits so the limit paths are testable."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with serve_model(
        trained_model_dir, log_path, MAX_BATCH_SIZE="8", MAX_REQUEST_BYTES="65536"
    ) as running:
        yield running
