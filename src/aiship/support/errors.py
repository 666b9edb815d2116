"""The steps' error types. The command line prints `error: <message>` and exits with the code."""


class StepError(Exception):
    """A step failed; the message is one line that names the cause and what to do. `outputs`,
    when given, are handed on even so (what a failed deploy found, for the pipeline's summary)."""

    exit_code = 1

    def __init__(self, message: str, outputs: dict[str, object] | None = None):
        super().__init__(message)
        self.outputs = outputs or {}


class ConfigError(StepError):
    """A flag or environment variable is missing or malformed."""

    exit_code = 2


class AuthError(StepError):
    """Credentials are missing, wrong, or lack a permission."""

    exit_code = 3


class NotFound(StepError):
    """A store, container, registry, cluster, model or version does not exist."""

    exit_code = 4


class Conflict(StepError):
    """The thing exists already and is immutable (a published model version)."""

    exit_code = 5


class IntegrityError(StepError):
    """Bytes or digests do not match what they should be."""

    exit_code = 6


class Unavailable(StepError):
    """A service did not answer, even after the SDK's own retries."""

    exit_code = 7


class RolledBack(StepError):
    """The new version failed its rollout, smoke test or canary analysis; the previous one
    serves again (or never stopped serving)."""

    exit_code = 8


class Unproven(StepError):
    """The release cannot prove what it must before it deploys (e.g. no staging pass)."""

    exit_code = 9


class Rejected(StepError):
    """The candidate was measured and found wanting: its model failed the quality gate."""

    exit_code = 10
