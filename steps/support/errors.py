"""The steps' error types. The command line prints `error: <message>` and exits with the code."""


class StepError(Exception):
    """A step failed; the message is one line that names the cause and what to do."""

    exit_code = 1


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
    """The new version failed its rollout or smoke test; the previous one serves again."""

    exit_code = 8
