"""Bounded prediction traffic: a thread that keeps asking a service for V2 predictions while
something happens to it (a rollout, a canary) and counts what failed. The tests and the local main
job share it. It is bounded three ways (requests, seconds, a pause between requests), so it shows
how a release behaves in use without becoming a load test.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from ..support.errors import ConfigError

# The first image of scikit-learn's digits data set (a 0): 8x8 grey levels 0..16, as one row.
DIGIT = (0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12)
DIGIT += (0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12)
DIGIT += (0, 0, 0, 0, 6, 13, 10, 0, 0, 0)
INPUT = "input"  # the sample model's input tensor


def infer_request(rows: Sequence[Sequence[float]], input_name: str = INPUT) -> dict:
    """A V2 inference request carrying ROWS as one FP32 batch."""
    return {
        "inputs": [
            {
                "name": input_name,
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ]
    }


@dataclass
class Traffic:
    """POSTs one V2 prediction after another to URL (…/v2/models/NAME/infer) on a thread, each a
    batch of BATCH_SIZE rows taken in turn from ROWS, until MAX_REQUESTS, MAX_SECONDS or the end
    of the `with` block."""

    url: str
    rows: Sequence[Sequence[float]] = (DIGIT,)
    batch_size: int = 1
    input_name: str = INPUT
    cert: tuple[str, str] | None = None  # a client certificate (the API server's proxy wants one)
    verify: str | bool = True
    max_requests: int = 20_000
    max_seconds: float = 300.0
    pause: float = 0.02  # between requests: the service under test keeps most of its CPU
    scratch: tempfile.TemporaryDirectory | None = None  # credentials for us; removed on exit
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if not self.rows or len({len(row) for row in self.rows}) != 1:
            raise ConfigError("traffic rows must be a non-empty list of rows of equal length")
        if self.batch_size < 1:
            raise ConfigError(f"traffic batch size {self.batch_size} is too small: use 1 or more")

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.scratch is not None:
            self.scratch.cleanup()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the traffic ends by its own bounds (MAX_REQUESTS or MAX_SECONDS)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def bodies(self) -> Iterator[dict]:
        """The requests' bodies, endless: the rows in turn, wrapping around."""
        rows = itertools.cycle(self.rows)
        while True:
            yield infer_request(list(itertools.islice(rows, self.batch_size)), self.input_name)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            for _, body in zip(range(self.max_requests), self.bodies(), strict=False):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = session.post(  # per request: REQUESTS_CA_BUNDLE beats a session's
                        self.url, json=body, cert=self.cert, verify=self.verify, timeout=10
                    )
                except OSError as exc:  # requests' errors, and a certificate file gone
                    self.failures.append(f"{type(exc).__name__}: {exc}"[-160:])
                    continue
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{response.status_code} {response.text[:80]}")
                self._stop.wait(self.pause)

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)


def service_traffic(
    kubeconfig: Path, namespace: str, service: str, model: str, **options
) -> Traffic:
    """Traffic through the API server's proxy of SERVICE (its port named http), which sends each
    request to one of the Service's ready endpoints, as a load balancer in front of it would. It
    authenticates with the current context's client certificate; inline (*-data) credentials are
    written to a private temporary folder that the Traffic removes on exit."""
    server, cluster, user = _current_context(Path(kubeconfig))
    credentials = _Credentials(Path(kubeconfig))
    try:
        cert = credentials.file(user, "client-certificate"), credentials.file(user, "client-key")
        if None in cert:
            raise ConfigError(
                f"{kubeconfig}: the current user has no client certificate and key; "
                "use a kubeconfig with client-certificate and client-key (or their -data forms)"
            )
        verify = (
            False
            if cluster.get("insecure-skip-tls-verify")
            else credentials.file(cluster, "certificate-authority") or True
        )
    except BaseException:
        credentials.cleanup()
        raise
    url = (
        f"{server.rstrip('/')}/api/v1/namespaces/{namespace}/services/{service}:http"
        f"/proxy/v2/models/{model}/infer"
    )
    return Traffic(url, cert=cert, verify=verify, scratch=credentials.scratch, **options)


def _current_context(kubeconfig: Path) -> tuple[str, dict, dict]:
    """The server, cluster and user entries of KUBECONFIG's current context (else its first)."""
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        current = config.get("current-context")
        contexts = config["contexts"]
        context = next((c for c in contexts if c["name"] == current), contexts[0])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u for u in config["users"] if u["name"] == context["user"])
        server = cluster["cluster"]["server"]
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {kubeconfig}: {exc.strerror}") from None
    except (yaml.YAMLError, AttributeError, KeyError, IndexError, StopIteration, TypeError):
        raise ConfigError(
            f"{kubeconfig} has no context with a cluster (server) and a user: "
            "point at a kubeconfig that kubectl can use"
        ) from None
    return server, cluster["cluster"], user["user"] or {}


class _Credentials:
    """Files for a kubeconfig's credentials: paths as given (relative ones from the kubeconfig's
    folder, as kubectl reads them), inline data written to a private temporary folder."""

    def __init__(self, kubeconfig: Path):
        self.folder = kubeconfig.parent
        self.scratch: tempfile.TemporaryDirectory | None = None

    def file(self, entry: dict, key: str) -> str | None:
        if f"{key}-data" in entry:
            try:
                data = base64.b64decode(entry[f"{key}-data"], validate=True)
            except (binascii.Error, TypeError):
                raise ConfigError(f"the kubeconfig's {key}-data is not base64") from None
            if self.scratch is None:
                self.scratch = tempfile.TemporaryDirectory(prefix="aiship-traffic-")  # mode 0700
            path = Path(self.scratch.name) / key
            path.write_bytes(data)
            return str(path)
        return str(self.folder / entry[key]) if entry.get(key) else None

    def cleanup(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()


def digits_rows() -> list[list[float]]:
    """The digits data set's test split as rows: traffic whose prediction mix is realistic."""
    from .sample_model import digits_split

    return digits_split()[1].tolist()
