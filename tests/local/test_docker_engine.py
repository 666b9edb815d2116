"""The local Docker engine."""

from __future__ import annotations

import pytest

from aiship.local import docker_engine
from aiship.support.errors import Unavailable


def test_without_an_engine_a_non_root_user_gets_one_clear_line(monkeypatch):
    monkeypatch.setattr(docker_engine, "engine_version", lambda timeout=10: None)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_engine.os, "geteuid", lambda: 1000)

    with pytest.raises(Unavailable) as raised:
        docker_engine.ensure_engine()

    assert "\n" not in str(raised.value)
    assert "only root can start one" in str(raised.value)
