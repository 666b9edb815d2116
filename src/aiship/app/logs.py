"""One JSON line per request on stderr; health and metrics probes stay out of the log."""

from __future__ import annotations

import logging
import sys
import time
from functools import lru_cache

from . import jsonio

ACCESS_LOGGER = "app.access"
QUIET_PATHS = ("/v2/health/", "/metrics")


def log_line(
    created: float, level: str, logger: str, message: str, fields: dict[str, object]
) -> str:
    """The one shape of every line the service logs."""
    second, micros = divmod(round(created * 1_000_000), 1_000_000)  # as datetime rounds
    entry = {
        "time": f"{_utc_second(second)}.{micros // 1000:03d}Z",
        "level": level,
        "logger": logger,
        "message": message,
        **fields,
    }
    return jsonio.dumps(entry).decode()


@lru_cache(maxsize=1)
def _utc_second(second: int) -> str:
    """A second's RFC 3339 UTC stamp, formatted once for all the lines logged within it, not once
    a line (bench/README.md, "The app's own cost, third round")."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", {}))
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return log_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), fields
        )


def configure_logging(level: int = logging.INFO) -> None:
    """Send the app's loggers to stderr as JSON, once per process."""
    logger = logging.getLogger("app")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def log_request(method: str, path: str, status: int, seconds: float) -> None:
    """The access line, written straight to stderr in one write.

    Not through a logging handler: a LogRecord, the handler's lock and the formatter cost about
    as much as the model's inference, on every request. The app.access logger's level still
    decides whether the line is written.
    """
    if path.startswith(QUIET_PATHS) and status < 400:
        return
    if not logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO):
        return
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }
    sys.stderr.write(log_line(time.time(), "info", ACCESS_LOGGER, "request", fields) + "\n")
