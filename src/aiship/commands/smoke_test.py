"""`smoke-test`: is the deployed service ready, the expected build, and does it predict?

The request is built from the model's own V2 metadata, so it works for any model, not only ours.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from math import prod

import requests

from ..support.errors import ConfigError, IntegrityError, StepError
from ..support.waiting import wait_for
from .command import Command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeResult:
    url: str
    revision: str
    model_name: str
    model_version: str
    model_sha256: str

    def outputs(self) -> dict[str, str]:
        return asdict(self)


def smoke_test(
    url: str,
    *,
    expect_model_sha256: str | None = None,
    expect_revision: str | None = None,
    timeout: float = 120,
    session: requests.Session | None = None,
) -> SmokeResult:
    """Wait for readiness, check /version against what was released, run one real inference."""
    http = session or requests.Session()
    url = url.rstrip("/")
    wait_for(
        lambda: _ready(http, url), timeout=timeout, what=f"{url}/v2/health/ready did not answer 200"
    )
    version = _get(http, f"{url}/version")
    model, revision = version["model"], version["app"]["revision"]
    if expect_model_sha256 and model["sha256"] != expect_model_sha256:
        raise IntegrityError(
            f"{url} serves model sha256 {model['sha256']}, expected {expect_model_sha256}"
        )
    if expect_revision and revision != expect_revision:
        raise IntegrityError(f"{url} runs code revision {revision}, expected {expect_revision}")
    metadata = _get(http, f"{url}/v2/models/{model['name']}")
    response = http.post(
        f"{url}/v2/models/{model['name']}/infer", json=sample_request(metadata), timeout=10
    )
    if response.status_code != 200:
        raise StepError(
            f"{url} answered a sample inference with {response.status_code}: {response.text[:200]}"
        )
    produced = {o["name"] for o in response.json().get("outputs", [])}
    expected = {o["name"] for o in metadata["outputs"]}
    if produced != expected:
        raise StepError(f"{url} returned outputs {sorted(produced)}, expected {sorted(expected)}")
    log.info(
        "smoke test passed: %s serves %s %s (revision %s)",
        url,
        model["name"],
        model["version"],
        revision,
    )
    return SmokeResult(url, revision, model["name"], model["version"], model["sha256"])


def sample_request(metadata: dict) -> dict:
    """One all-zeros row for every input, shaped and typed as the model says."""
    inputs = []
    for spec in metadata["inputs"]:
        shape = [1 if d == -1 else d for d in spec["shape"]]
        zero = False if spec["datatype"] == "BOOL" else 0
        inputs.append(
            {
                "name": spec["name"],
                "datatype": spec["datatype"],
                "shape": shape,
                "data": [zero] * prod(shape),
            }
        )
    return {"id": "smoke-test", "inputs": inputs}


def _ready(http: requests.Session, url: str) -> bool | None:
    try:
        return True if http.get(f"{url}/v2/health/ready", timeout=2).status_code == 200 else None
    except requests.RequestException:
        return None


def _get(http: requests.Session, url: str) -> dict:
    try:
        response = http.get(url, timeout=10)
    except requests.RequestException as exc:
        raise StepError(f"GET {url} failed: {exc}") from None
    if response.status_code != 200:
        raise StepError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    return response.json()


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="base URL of the service")
    parser.add_argument("--expect-model-sha256", help="fail unless /version shows this model")
    parser.add_argument("--expect-revision", help="fail unless /version shows this git revision")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness")


@dataclass(frozen=True)
class SmokePlan:
    url: str
    expect_model_sha256: str | None = None
    expect_revision: str | None = None
    timeout: float = 120

    def describe(self) -> str:
        return f"check that {self.url} is ready, serves the expected build and answers a prediction"


def _plan(args: argparse.Namespace) -> SmokePlan:
    if not args.url.startswith(("http://", "https://")) or args.url[-3:] == "://":
        raise ConfigError(f"--url {args.url!r}: give the service's base URL, http(s)://HOST[:PORT]")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout:g}: give a number of seconds above 0")
    return SmokePlan(args.url, args.expect_model_sha256, args.expect_revision, args.timeout)


def _run(plan: SmokePlan) -> SmokeResult:
    return smoke_test(
        plan.url,
        expect_model_sha256=plan.expect_model_sha256,
        expect_revision=plan.expect_revision,
        timeout=plan.timeout,
    )


COMMANDS = (
    Command(
        "smoke-test",
        help="check that a deployed service is ready, the right build, and predicts",
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
