"""An MLflow Model Registry as a model store, over MLflow's REST API (no mlflow package needed).

MLflow numbers a registered model's versions itself, so ours (the card's) is the model-version
tag aiship.version. A version's files are the artifacts of a run of its own in the experiment
aiship-models, uploaded through the tracking server's artifact proxy (/api/2.0/mlflow-artifacts,
on by default), the card last; the MLflow version's source is that run's artifact folder. The tag
aiship.complete, set after every file and its aiship.sha256.<file> tag, makes the version visible.

A publish first claims its version (creates the MLflow version, tagged but not complete), then
reads the claims again: of two publishes of the same version, the one MLflow numbered higher
takes its claim back and fails, so exactly one wins. A failed publish takes back what it made.

Credentials as MLflow's own clients read them: MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD (basic), else MLFLOW_TRACKING_TOKEN (bearer);
MLFLOW_TRACKING_SERVER_CERT_PATH for a server whose certificate a private CA signed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

import requests
from urllib3.util.retry import Retry

from aiship.app.card import version_key

from ...support.errors import AuthError, ConfigError, Conflict, NotFound, StepError, Unavailable
from ...support.http import retrying_session
from ...support.outputs import mask
from ...support.progress import Progress
from .models import CARD_FILE, ProgressFactory

API = "api/2.0/mlflow"
ARTIFACTS = "api/2.0/mlflow-artifacts/artifacts"
ARTIFACT_SCHEME = "mlflow-artifacts"
EXPERIMENT = "aiship-models"
VERSION_TAG = "aiship.version"
COMPLETE_TAG = "aiship.complete"
SHA256_TAG = "aiship.sha256."  # + the file's name
# MLflow's own rule for aliases; `latest` and v<N> are reserved for its version references.
ALIAS = re.compile(r"^[\w-]{1,255}$")
RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)
CREDENTIALS_FIX = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, "
    "to credentials the server accepts"
)
PAGE = 1000
CHUNK = 1 << 20
TIMEOUT = (10, 60)  # (connect, read) seconds for the REST calls
TRANSFER_TIMEOUT = (10, 600)  # the server stores a whole upload before it answers
RETRIED_STATUS = (429, 500, 502, 503, 504)
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
EXISTS = "RESOURCE_ALREADY_EXISTS"


class MLflowStore:
    """Versions of registered models on the MLflow tracking server at URL (http[s]://HOST...)."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url = url.rstrip("/")
        self._session = session
        # (name, our version) -> MLflow's number, once looked up: messages name models:/NAME/N.
        self._numbers: dict[tuple[str, str], str] = {}

    @classmethod
    def from_url(
        cls, url: str, *, retries: int = 3, env: Mapping[str, str] | None = None
    ) -> MLflowStore:
        """mlflow+http(s)://HOST[:PORT][/PATH], with credentials from ENV (default: os.environ)."""
        return cls(server_url(url), new_session(retries, os.environ if env is None else env))

    # ModelStore

    def describe(self, name: str = "", version: str = "", file: str = "") -> str:
        where = f"MLflow registry {self.url}"
        if not name:
            return where
        if not version:
            return f"model {name!r} in {where}"
        number = self._numbers.get((name, version))
        ref = f"models:/{name}/{number} (version {version})" if number else f"{name} {version}"
        return f"{file} of {ref} in {where}" if file else f"{ref} in {where}"

    def versions(self, name: str) -> list[str]:
        with self._errors(f"list the versions of model {name!r}", _read(name)):
            return sorted({claim.version for claim in self._claims(name) if claim.complete})

    def alias(self, name: str, alias: str) -> str:
        check_alias(alias)
        fix = f"set it with publish-model --alias {alias} or in MLflow"
        with self._errors(f"read alias @{alias} of model {name!r}", _read(name), fix):
            params = {"name": name, "alias": alias}
            try:
                found = self._api("GET", "registered-models/alias", params=params)
            except _Refused as exc:
                # MLflow answers an alias it does not know as a bad parameter, not a 404.
                if exc.code == "INVALID_PARAMETER_VALUE" and "not found" in exc.message:
                    exc.code = NOT_FOUND
                raise
        found = found["model_version"]
        claim = _Claim.of(found)
        if claim is None or not claim.complete:
            raise NotFound(
                f"alias @{alias} names models:/{name}/{found.get('version')} in "
                f"{self.describe()}, which is not a version publish-model completed: point the "
                "alias at one that is"
            )
        self._numbers[(name, claim.version)] = claim.number
        return claim.version

    def read_card(self, name: str, version: str) -> bytes:
        with self._errors(f"read {CARD_FILE} of {name} {version}", _read(name)):
            path = self._artifact(self._complete(name, version), CARD_FILE)
            return self._call("GET", path).content

    def download(
        self, name: str, version: str, file: str, out: BinaryIO, progress: Progress
    ) -> None:
        with self._errors(f"download {file} of {name} {version}", _read(name)):
            path = self._artifact(self._complete(name, version), file)
            with self._call("GET", path, stream=True, timeout=TRANSFER_TIMEOUT) as response:
                if response.headers.get("Content-Length", "").isdigit():
                    progress.set_total(int(response.headers["Content-Length"]))
                done = 0
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    progress.update_to(done)

    def publish(
        self,
        name: str,
        version: str,
        files: Mapping[str, Path],
        card: bytes,
        progress: ProgressFactory,
        alias: str = "",
    ) -> None:
        if alias:
            check_alias(alias)  # before anything is written
        with self._errors(f"publish {name} {version}", _write(name)):
            self._refuse_claimed(name, version)
            run = self._start_run(name, version)
            claim = None
            try:
                claim = self._claim(name, version, run)
                self._refuse_claimed(name, version, mine=claim)
                sent = {}
                for file, path in files.items():
                    with open(path, "rb") as source:
                        sent[file] = self._upload(run, file, source, progress)
                sent[CARD_FILE] = self._upload(run, CARD_FILE, io.BytesIO(card), progress)
                for file, sha256 in sent.items():
                    self._tag(name, claim, SHA256_TAG + file, sha256)
                self._tag(name, claim, COMPLETE_TAG, "true")  # readers see the version from here
                self._api("POST", "runs/update", body={**run.ref, "status": "FINISHED"})
                if alias:
                    body = {"name": name, "alias": alias, "version": claim.number}
                    self._api("POST", "registered-models/alias", body=body)
            except BaseException:
                self._take_back(name, run, claim)
                raise

    # Versions: claims, lookups, publish steps

    def _claims(self, name: str) -> list[_Claim]:
        """Every MLflow version of NAME that publish-model made, complete or not."""
        found, token = [], ""
        while True:
            params = {"filter": f"name='{name}'", "max_results": PAGE}
            if token:
                params["page_token"] = token
            page = self._api("GET", "model-versions/search", params=params)
            found += [c for v in page.get("model_versions", []) if (c := _Claim.of(v))]
            token = page.get("next_page_token", "")
            if not token:
                break
        for claim in sorted(found, key=_Claim.order, reverse=True):  # the lowest number wins
            if claim.complete:
                self._numbers[(name, claim.version)] = claim.number
        return found

    def _complete(self, name: str, version: str) -> _Claim:
        equal = [c for c in self._claims(name) if c.complete and _same(c.version, version)]
        if not equal:
            raise NotFound(
                f"model {name!r} has no complete version {version} in {self.describe()}: pick a "
                "published version"
            )
        return min(equal, key=_Claim.order)

    def _refuse_claimed(self, name: str, version: str, mine: _Claim | None = None) -> None:
        """Conflict when VERSION is published or being published (by a claim older than MINE)."""
        rivals = [
            c
            for c in self._claims(name)
            if _same(c.version, version) and (mine is None or c.order() < mine.order())
        ]
        if not rivals:
            return
        first = min(rivals, key=_Claim.order)
        ref = f"models:/{name}/{first.number}"
        if first.complete:
            raise Conflict(
                f"model {name!r} version {version} already exists as {ref} in "
                f"{self.describe()}: versions are immutable, publish a new one with --version"
            )
        raise Conflict(
            f"model {name!r} version {version} is being published as {ref} (since "
            f"{first.created()}) in {self.describe()}: if no publish runs, delete that MLflow "
            "version and publish again"
        )

    def _start_run(self, name: str, version: str) -> _Run:
        body = {
            "experiment_id": self._experiment(),
            "run_name": f"{name}-{version}",
            "start_time": _now_ms(),
            "tags": [{"key": VERSION_TAG, "value": version}],
        }
        info = self._api("POST", "runs/create", body=body)["run"]["info"]
        run = _Run(info["run_id"], info["artifact_uri"])
        if urlsplit(run.artifact_uri).scheme != ARTIFACT_SCHEME:
            self._take_back(name, run, None)
            raise ConfigError(
                f"experiment {EXPERIMENT!r} in {self.describe()} keeps artifacts at "
                f"{run.artifact_uri}, not behind the server's artifact proxy: run `mlflow server` "
                "with --serve-artifacts (the default) and delete or rename that experiment"
            )
        return run

    def _experiment(self) -> str:
        """The id of the experiment that holds the runs, created on first use."""
        params = {"experiment_name": EXPERIMENT}
        try:
            found = self._api("GET", "experiments/get-by-name", params=params)["experiment"]
        except _Refused as exc:
            if exc.code != NOT_FOUND:
                raise
            with _unless(EXISTS):  # a concurrent publish created it meanwhile
                return self._api("POST", "experiments/create", body={"name": EXPERIMENT})[
                    "experiment_id"
                ]
            found = self._api("GET", "experiments/get-by-name", params=params)["experiment"]
        if found.get("lifecycle_stage", "active") != "active":
            raise ConfigError(
                f"experiment {EXPERIMENT!r} in {self.describe()} is deleted: restore it "
                "(`mlflow experiments restore`) or remove it for good"
            )
        return found["experiment_id"]

    def _claim(self, name: str, version: str, run: _Run) -> _Claim:
        with _unless(EXISTS):
            self._api("POST", "registered-models/create", body={"name": name})
        body = {
            "name": name,
            "source": run.artifact_uri,
            "run_id": run.run_id,
            "description": f"{name} {version}, published by aiship publish-model",
            "tags": [{"key": VERSION_TAG, "value": version}],
        }
        made = self._api("POST", "model-versions/create", body=body)["model_version"]
        claim = _Claim(str(made["version"]), version, False, run.artifact_uri, _now_ms())
        self._numbers[(name, version)] = claim.number
        return claim

    def _upload(self, run: _Run, file: str, source: BinaryIO, progress: ProgressFactory) -> str:
        """SOURCE into the run's artifacts as FILE; the sha256 of what was sent."""
        path = _proxy_path(run.artifact_uri, file)
        with progress(f"upload {file}") as bar:
            body = _Upload(source, bar)
            self._call("PUT", path, data=body, timeout=TRANSFER_TIMEOUT)
        return body.sha256()

    def _tag(self, name: str, claim: _Claim, key: str, value: str) -> None:
        body = {"name": name, "version": claim.number, "key": key, "value": value}
        self._api("POST", "model-versions/set-tag", body=body)

    def _take_back(self, name: str, run: _Run, claim: _Claim | None) -> None:
        """Undo a publish that cannot finish: the claim first, so readers and rivals stop
        seeing it, then the files and the run. Best effort: the failure that got us here is
        what the user must see."""
        undo: list[tuple[str, str, dict]] = []
        if claim is not None:
            body = {"name": name, "version": claim.number}
            undo.append(("DELETE", f"{API}/model-versions/delete", {"json": body}))
        undo.append(("DELETE", _proxy_path(run.artifact_uri, ""), {}))
        undo.append(("POST", f"{API}/runs/delete", {"json": run.ref}))
        for method, path, options in undo:
            with contextlib.suppress(_Refused, requests.RequestException):
                self._call(method, path, **options)

    def _artifact(self, claim: _Claim, file: str) -> str:
        if urlsplit(claim.source).scheme != ARTIFACT_SCHEME:
            raise ConfigError(
                f"{claim.source} (the source of MLflow version {claim.number}) is not behind the "
                "server's artifact proxy: publish versions with publish-model"
            )
        return _proxy_path(claim.source, file)

    # HTTP, and its errors translated in one place

    def _api(
        self, method: str, endpoint: str, *, params: dict | None = None, body: dict | None = None
    ) -> dict:
        return self._call(method, f"{API}/{endpoint}", params=params, json=body).json()

    def _call(
        self, method: str, path: str, *, timeout: tuple[int, int] = TIMEOUT, **options: object
    ) -> requests.Response:
        response = self._session.request(method, f"{self.url}/{path}", timeout=timeout, **options)
        if response.status_code >= 400:
            raise _Refused.of(response, path)
        return response

    @contextlib.contextmanager
    def _errors(self, what: str, permission: str, fix_not_found: str = "") -> Iterator[None]:
        """MLflow's answers and requests' failures as the steps' errors, one line each."""
        where = self.url
        try:
            yield
        except _Refused as exc:
            if exc.status == 401 or exc.code == "UNAUTHENTICATED":
                raise AuthError(
                    f"MLflow at {where} refused the credentials to {what}: {CREDENTIALS_FIX}"
                ) from None
            if exc.status == 403 or exc.code == "PERMISSION_DENIED":
                raise AuthError(
                    f"MLflow at {where} denied permission to {what}: the user needs {permission}"
                ) from None
            if exc.code == NOT_FOUND:
                fix = fix_not_found or "check --store and the model's name"
                raise NotFound(
                    f"MLflow at {where} could not {what}: {exc.message}: {fix}"
                ) from None
            if exc.code == EXISTS:
                raise Conflict(f"MLflow at {where} could not {what}: {exc.message}") from None
            if exc.status == 404:
                raise NotFound(
                    f"{where} does not serve MLflow's REST API (/{exc.path} answered 404): check "
                    "the host, port and path of --store"
                ) from None
            if exc.status == 503 and "--serve-artifacts" in exc.message:
                raise ConfigError(
                    f"MLflow at {where} does not proxy artifacts, so it cannot {what}: run "
                    "`mlflow server` with --serve-artifacts (the default)"
                ) from None
            if exc.status in RETRIED_STATUS:
                raise Unavailable(
                    f"MLflow at {where} answered {exc.status} to {what}, also when retried "
                    f"({exc.message}): try again later, or see the server's log"
                ) from None
            if 400 <= exc.status < 500:
                raise ConfigError(f"MLflow at {where} refused to {what}: {exc.message}") from None
            raise StepError(
                f"MLflow at {where} answered {exc.status} to {what}: {exc.message}"
            ) from None
        except requests.RequestException as exc:
            raise Unavailable(
                f"MLflow at {where} did not answer ({_reason(exc)}), so could not {what}: check "
                "that the server runs and that --store names it"
            ) from None


@dataclass(frozen=True)
class _Claim:
    """An MLflow version that publish-model made: its number, our version, complete or not."""

    number: str
    version: str
    complete: bool
    source: str
    created_ms: int

    @classmethod
    def of(cls, found: dict) -> _Claim | None:
        tags = {tag["key"]: tag.get("value", "") for tag in found.get("tags", [])}
        if VERSION_TAG not in tags:
            return None  # registered some other way: not ours to serve
        return cls(
            str(found["version"]),
            tags[VERSION_TAG],
            tags.get(COMPLETE_TAG) == "true",
            found.get("source", ""),
            int(found.get("creation_timestamp") or 0),
        )

    def order(self) -> int:
        return int(self.number)

    def created(self) -> str:
        return datetime.fromtimestamp(self.created_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Run:
    run_id: str
    artifact_uri: str  # mlflow-artifacts:/EXPERIMENT_ID/RUN_ID/artifacts

    @property
    def ref(self) -> dict[str, str]:
        return {"run_id": self.run_id}


class _Refused(Exception):
    """An HTTP error answer, before _errors translates it."""

    def __init__(self, status: int, code: str, message: str, path: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path

    @classmethod
    def of(cls, response: requests.Response, path: str) -> _Refused:
        code, message = "", response.text
        with contextlib.suppress(ValueError):
            answer = response.json()
            if isinstance(answer, dict):
                code, message = answer.get("error_code", ""), answer.get("message", message)
        # The first line, short: SQL errors and HTML pages are not one-line messages.
        lines = str(message).strip().splitlines() or [response.reason or ""]
        return cls(response.status_code, code, lines[0][:300].rstrip("."), path.split("?", 1)[0])


class _Upload:
    """A request body read from SOURCE that reports progress and hashes what is sent.

    urllib3 asks tell() before it sends and seek()s back there to retry, so hashing restarts."""

    def __init__(self, source: BinaryIO, progress: Progress) -> None:
        self._source, self._progress = source, progress
        self._start = source.tell()
        self._size = source.seek(0, io.SEEK_END) - self._start
        source.seek(self._start)
        self._digest, self._sent = hashlib.sha256(), 0
        progress.set_total(self._size)

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self._digest.update(chunk)
        self._sent += len(chunk)
        self._progress.update_to(self._sent)
        return chunk

    def tell(self) -> int:
        return self._sent

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("an upload restarts from its beginning only")
        self._source.seek(self._start)
        self._digest, self._sent = hashlib.sha256(), 0
        self._progress.update_to(0)
        return 0

    def sha256(self) -> str:
        return self._digest.hexdigest()


def server_url(url: str) -> str:
    """mlflow+http(s)://HOST[:PORT][/PATH] -> http(s)://HOST[:PORT][/PATH]."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower().removeprefix("mlflow+")
    shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"store {shown}: an MLflow store is mlflow+http(s)://HOST[:PORT][/PATH]")
    if parts.username or parts.password:
        raise ConfigError(
            f"store {shown}: no credentials in the URL, it appears in logs; set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"store {shown}: an MLflow store URL takes no query or fragment")
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        raise ConfigError(f"store {shown}: the port is not a number from 1 to 65535") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}{port}{parts.path.rstrip('/')}"


def new_session(retries: int, env: Mapping[str, str]) -> requests.Session:
    """A session with MLflow's credentials from ENV (masked in CI) that retries connection
    errors, 429 and 5xx, honouring Retry-After."""
    retry = Retry(
        total=retries,
        connect=retries,
        # A request whose answer was lost may have been applied: creates are not idempotent.
        read=0,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=RETRIED_STATUS,
        allowed_methods=None,  # an error status means the server did not do it: any verb
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = retrying_session(retry)
    user = env.get("MLFLOW_TRACKING_USERNAME", "")
    password = env.get("MLFLOW_TRACKING_PASSWORD", "")
    token = env.get("MLFLOW_TRACKING_TOKEN", "")
    if user and password:  # MLflow's own clients prefer basic auth when both are set
        mask(password, env)
        session.auth = (user, password)
    elif user or password:
        raise ConfigError(
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD go together: set both or neither"
        )
    elif token:
        mask(token, env)
        session.headers["Authorization"] = f"Bearer {token}"
    if env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        session.verify = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    return session


def check_alias(alias: str) -> None:
    """MLflow's rule for alias names, checked before anything is sent."""
    if not ALIAS.match(alias) or RESERVED_ALIAS.match(alias):
        raise ConfigError(
            f"alias {alias!r} is not an MLflow alias: letters, digits, '_' and '-', and not "
            "'latest' or v<number> (MLflow reserves those)"
        )


def _proxy_path(artifact_uri: str, file: str) -> str:
    """The artifact proxy's path for FILE below mlflow-artifacts:/PATH (or the folder itself)."""
    folder = urlsplit(artifact_uri).path.strip("/")
    return f"{ARTIFACTS}/{quote(folder)}" + (f"/{quote(file)}" if file else "")


@contextlib.contextmanager
def _unless(code: str) -> Iterator[None]:
    """Ignore MLflow's answer CODE (a create that finds the thing there already)."""
    try:
        yield
    except _Refused as exc:
        if exc.code != code:
            raise


def _read(name: str) -> str:
    return f"READ permission on registered model {name!r}"


def _write(name: str) -> str:
    return (
        f"EDIT permission on registered model {name!r} and on experiment {EXPERIMENT!r} (or "
        "the right to create them)"
    )


def _same(a: str, b: str) -> bool:
    return version_key(a) == version_key(b)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _reason(exc: requests.RequestException) -> str:
    """The root cause in a few words ('Connection refused', 'Read timed out'), not urllib3's
    nested repr."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__
