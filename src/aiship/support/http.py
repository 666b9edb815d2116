"""HTTP sessions for the services the steps call through `requests`."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def retrying_session(retry: Retry) -> requests.Session:
    """A session that retries every request, http and https alike, as RETRY says."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
