"""The local registry stand-in: Debian docker-registry on 127.0.0.1, with and without a login."""

from __future__ import annotations

import pytest
import requests

from aiship.local.registry_server import LocalRegistry
from tests.registries import PASSWORD, USER


def test_local_registry_answers_and_stops(tmp_path):
    with LocalRegistry(tmp_path / "r") as registry:
        assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{registry.url}/v2/", timeout=5)


def test_htpasswd_registry_wants_a_login(auth_registry):
    answer = requests.get(f"{auth_registry.url}/v2/", timeout=5)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(f"{auth_registry.url}/v2/", auth=(USER, PASSWORD), timeout=5).ok
