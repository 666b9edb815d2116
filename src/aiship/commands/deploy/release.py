"""What both deploy targets share: the release to roll out, where it goes, the result, the smoke
check."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ...support.errors import ConfigError, StepError
from ..smoke_test import smoke_test

DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
# The rollout already waited for health: a service still not ready this long after is broken.
SMOKE_READY_TIMEOUT = 15


@dataclass(frozen=True)
class KubernetesTarget:
    """Where a kubernetes deploy goes: the cluster, the namespace, the overlay applied there."""

    kubeconfig: Path
    namespace: str
    context: str | None = None
    overlay: str = "production"

    def describe(self) -> str:
        return f"namespace {self.namespace} (overlay {Path(self.overlay).name})"


@dataclass(frozen=True)
class Build:
    """What a smoke test expects the service's /version to say; empty: not checked."""

    revision: str = ""
    model_sha256: str = ""

    @classmethod
    def expecting(cls, revision: str, model_sha256: str) -> Build:
        """The build to expect; a revision recorded as "unknown" is not checked."""
        return cls("" if revision == "unknown" else revision, model_sha256)


@dataclass(frozen=True)
class Release:
    """What to roll out, and what to record about it."""

    image: str  # REPOSITORY@sha256:...
    revision: str = "unknown"  # git revision of the code
    model_version: str = "unknown"
    model_sha256: str = ""  # what the smoke test expects the service to load

    def __post_init__(self) -> None:
        if not DIGEST_REFERENCE.match(self.image):
            raise ConfigError(
                f"--image {self.image!r} is not pinned by digest: pass REPOSITORY@sha256:<64 hex>"
                " (push-image prints it); tags can move, digests cannot"
            )

    @property
    def digest(self) -> str:
        return self.image.rsplit("@", 1)[1]

    @property
    def change_cause(self) -> str:
        return f"deploy {self.image} (revision {self.revision}, model {self.model_version})"

    @property
    def build(self) -> Build:
        return Build.expecting(self.revision, self.model_sha256)


@dataclass(frozen=True)
class DeployResult:
    target: str
    image: str
    result: str  # "deployed", "unchanged", "promoted" (a canary that passed) or "rolled-back"
    previous_image: str | None
    url: str | None = None
    checks: tuple[str, ...] = ()  # a canary's judgement, one line a step

    @property
    def digest(self) -> str:
        return self.image.rsplit("@", 1)[1]

    def outputs(self) -> dict[str, object]:
        found = {k: v for k, v in asdict(self).items() if v is not None}
        return {**found, "digest": self.digest, "checks": list(self.checks)}


def smoke_failure(url: str, build: Build | None = None) -> str | None:
    """Why the smoke test of `url` failed, or None when it passed; with a build, the service
    must also run its revision and its model."""
    build = build or Build()
    try:
        smoke_test(
            url,
            timeout=SMOKE_READY_TIMEOUT,
            expect_revision=build.revision or None,
            expect_model_sha256=build.model_sha256 or None,
        )
    except StepError as exc:
        return f"smoke test: {exc}"
    return None
