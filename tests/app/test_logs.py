"""The shape of the service's log lines (src/aiship/app/logs.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from aiship.app.logs import log_line


def stamp(created: float) -> str:
    """The RFC 3339 UTC stamp with milliseconds, worked out by datetime, a second implementation."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.mark.parametrize(
    "times",
    [
        # within one second, across its boundary, and back to an earlier second
        (1764545199.001, 1764545199.999, 1764545200.0, 1764545200.5, 1764545199.25),
        # a new day, a new year
        (1767225599.9995, 1767225600.0001),
    ],
)
def test_every_line_carries_its_own_second_and_millisecond(times):
    for created in times:
        entry = json.loads(log_line(created, "info", "app.access", "request", {"status": 200}))
        assert entry["time"] == stamp(created), created


def test_fields_follow_the_common_keys():
    line = log_line(1764545199.5, "error", "app", "boom", {"path": "/predict", "status": 500})
    assert list(json.loads(line)) == ["time", "level", "logger", "message", "path", "status"]
