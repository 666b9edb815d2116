"""Local HTTPS servers (trustme CA) that play GitHub's and Azure DevOps' REST APIs."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Iterator

import pytest
import trustme
from pytest_httpserver import HTTPServer

from tests.commands.setup.fakes import FakeAzureDevOps, FakeGitHub

GITHUB_TOKEN = "ghp_FAKE0123456789abcdefTOKENxyz"
DEVOPS_PAT = "pat0fake0123456789abcdefghijklmnopqrstuv"
REPO = "acme/shop"
ORG, PROJECT = "acme", "shop"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_pem(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def https_server(ca) -> Iterator[HTTPServer]:
    """An HTTPS server on 127.0.0.1, a fresh port per test, stopped afterwards."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def trust_fake_ca(monkeypatch, ca_pem) -> str:
    """requests (and so msrest) trust the fake's CA through REQUESTS_CA_BUNDLE, as a user's
    corporate CA would be configured; the machine presets that variable, so it is replaced."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_pem)
    return ca_pem


@pytest.fixture
def github(https_server, trust_fake_ca) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(GITHUB_TOKEN, REPO, base_url=https_server.url_for("").rstrip("/"))
    https_server.expect_request(re.compile(".*")).respond_with_handler(fake)
    yield fake
    assert fake.held.violations == [], "the fake left GitHub's REST description"


@pytest.fixture
def devops(https_server, trust_fake_ca, tmp_path, monkeypatch) -> Iterator[FakeAzureDevOps]:
    from azure.devops import _file_cache, client, connection

    # The SDK caches discovered locations on disk under ~/.azure-devops: keep them per test.
    monkeypatch.setattr(client, "OPTIONS_FILE_CACHE", _file_cache.get_cache("o", 0, str(tmp_path)))
    monkeypatch.setattr(
        connection, "RESOURCE_FILE_CACHE", _file_cache.get_cache("r", 0, str(tmp_path))
    )
    basic = base64.b64encode(f":{DEVOPS_PAT}".encode()).decode()
    fake = FakeAzureDevOps(
        f"Basic {basic}", ORG, PROJECT, server_url=https_server.url_for("").rstrip("/")
    )
    https_server.expect_request(re.compile(".*")).respond_with_handler(fake)
    yield fake
    assert fake.held.violations == [], "the fake left Azure DevOps' REST descriptions"
