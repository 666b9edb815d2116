"""/docs: the page and its assets through Flask's test client, then the page itself in headless
Chromium (Debian's, installed by ./dev) against the real server: it lists every endpoint
of /openapi.json and runs a prediction through "Try it out", loading nothing from elsewhere."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
import requests
from sklearn.datasets import load_digits

from aiship.app.docs import CONTENT_SECURITY_POLICY

CHROMIUM = "/usr/bin/chromium"


class _References(HTMLParser):
    """Every src= and href= of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_page_loads_only_what_the_service_serves(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    references = _References()
    references.feed(page.get_data(as_text=True))
    assert len(references.urls) == 4  # the stylesheet, the icon, Swagger UI and its starter
    for url in references.urls:
        assert url.startswith("/docs/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.get_data()) > 0


@pytest.mark.parametrize(
    "path", ["/docs/index.html", "/docs/oauth2-redirect.html", "/docs/..%2Fdocs.py", "/docs/"]
)
def test_nothing_else_is_reachable_under_docs(client, path):
    answer = client.get(path)
    assert answer.status_code == 404
    assert "error" in answer.get_json()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


def test_the_page_lists_every_endpoint_and_tries_out_a_prediction(browser, server):
    page = browser.new_page()
    console, requested = [], []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{server.url}/docs")
    page.locator(".opblock").first.wait_for()
    listed = page.locator(".opblock-summary-path").all_inner_texts()
    documented = requests.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    assert sorted(listed) == sorted(documented)

    body = {"instances": [load_digits().data[0].tolist()]}
    predict = page.locator("#operations-simple-predict")
    predict.locator(".opblock-summary").click()
    predict.get_by_role("button", name="Try it out").click()
    predict.locator("textarea.body-param__text").fill(json.dumps(body))
    predict.get_by_role("button", name="Execute").click()
    shown = predict.locator(".live-responses-table .response-col_description .highlight-code pre")
    shown.wait_for()

    expected = requests.post(f"{server.url}/predict", json=body, timeout=10).json()
    assert json.loads(shown.inner_text()) == expected
    assert expected["predictions"] == [0]
    assert all(re.match(re.escape(server.url) + "/", url) for url in requested), requested
    assert console == []
    page.close()
