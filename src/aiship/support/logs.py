"""Step logging: human lines on stderr, with secrets redacted before anything is written."""

from __future__ import annotations

import logging
import re
import sys

# Secret-looking fragments that must never reach a log, whatever logged them.
SECRET_PATTERNS = (
    re.compile(r"(?i)(sig=)[^&\s'\"]+"),  # SAS signature
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
    re.compile(r"(?i)(password[\"']?\s*[:=]\s*[\"']?)[^\s,'\"&;]+"),
    re.compile(r"(?i)(Authorization:\s*(?:Bearer|Basic)\s+)\S+"),
    re.compile(r"(?i)((?:access|refresh)_token[\"']?\s*[:=]\s*[\"']?)[^\s,'\"&]+"),
)
REDACTED = "***"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(verbose: bool = False) -> None:
    """stderr only: stdout belongs to --json and the CI systems' logging commands."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The Azure SDKs log whole requests at INFO; keep them quiet unless asked.
    for noisy in ("azure", "urllib3", "botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
