"""GitHub's REST API: a session that signs in with a token and retries as GitHub asks, and one
repository's calls, each failure a one-line step error that says what to fix."""

from __future__ import annotations

from collections.abc import Mapping

import requests
from urllib3.util.retry import Retry

from ..support.errors import AuthError, ConfigError, StepError, Unavailable
from ..support.http import retrying_session

DEFAULT_API_URL = "https://api.github.com"
TOKEN_VARIABLES = ("GITHUB_TOKEN", "GH_TOKEN")
RETRY_AFTER_CAP = 60.0  # seconds: a longer Retry-After fails the step instead of stalling it


class SecondaryRateLimitRetry(Retry):
    """urllib3's Retry, plus GitHub's secondary rate limit (403 with Retry-After), waits capped."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        limited = status_code == 403 and has_retry_after
        return super().is_retry(method, 429 if limited else status_code, has_retry_after)

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), RETRY_AFTER_CAP)


def github_session(token: str, retries: int = 4) -> requests.Session:
    """A session that authenticates, speaks API version 2022-11-28 and retries 5xx/rate limits."""
    retry = SecondaryRateLimitRetry(
        total=retries,
        backoff_factor=1.0,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "PUT", "PATCH", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back and is translated below
    )
    session = retrying_session(retry)
    session.headers.update(
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "aiship-setup",
        }
    )
    return session


class GitHubApi:
    """One repository's REST calls; every failure becomes a one-line step error."""

    def __init__(self, session: requests.Session, api_url: str, repo: str) -> None:
        self.session, self.api_url, self.repo = session, api_url.rstrip("/"), repo

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        permission: str = "",
        json: object = None,
        params: Mapping[str, object] | None = None,
    ) -> requests.Response:
        response = self._send(method, path, what, json=json, params=params)
        if not response.ok:
            raise self.error(response, what, permission)
        return response

    def find(self, path: str, *, what: str, permission: str = "") -> dict | None:
        """GET a resource; None when GitHub says 404."""
        response = self._send("GET", path, what)
        if response.status_code == 404:
            return None
        if not response.ok:
            raise self.error(response, what, permission)
        return response.json()

    def _send(self, method: str, path: str, what: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        try:
            return self.session.request(method, url, timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise Unavailable(
                f"GitHub API at {self.api_url} could not be reached to {what}: "
                f"{type(exc).__name__}; check --api-url and the network"
            ) from None

    def error(self, response: requests.Response, what: str, permission: str) -> StepError:
        status = response.status_code
        if status == 401:
            return AuthError(
                f"GitHub rejected the token (401) trying to {what}: "
                f"set a valid {' or '.join(TOKEN_VARIABLES)}"
            )
        if status in (403, 429) and (
            response.headers.get("x-ratelimit-remaining") == "0" or status == 429
        ):
            return Unavailable(f"GitHub's rate limit stopped us trying to {what}: retry later")
        if status in (403, 404) and permission:
            return AuthError(
                f"the token may not {what} ({status}): a fine-grained token needs the repository "
                f"permission '{permission}' on {self.repo}, a classic one the repo scope and "
                "admin rights"
            )
        if status == 422 and "billing plan" in _message(response):
            return ConfigError(plan_lacks_reviewers(self.repo, f"422: {_message(response)}"))
        if status == 422:  # e.g. a reviewer who cannot see the repository
            return ConfigError(
                f"GitHub refused to {what} (422: {_message(response)}): every reviewer needs "
                f"access to {self.repo}; check --reviewers"
            )
        if status >= 500:
            return Unavailable(f"GitHub answered {status} trying to {what}, even after retries")
        return StepError(f"GitHub answered {status} trying to {what}: {_message(response)}")


def plan_lacks_reviewers(repo: str, said: str) -> str:
    """What to do when GitHub's plan has no required reviewers for REPO (a private one)."""
    return (
        f"required reviewers on private repository {repo} need GitHub Enterprise Cloud ({said}): "
        f"make {repo} public, or move it to an organization on GitHub Enterprise Cloud"
    )


def _message(response: requests.Response) -> str:
    """GitHub's message, and the first of its detailed errors when it gives them."""
    try:
        body = response.json()
        details = [e.get("message") or e.get("code") for e in body.get("errors") or []]
        return "; ".join(filter(None, [body.get("message"), *details[:1]]))[:200]
    except (ValueError, AttributeError):
        return response.text[:200].replace("\n", " ")
