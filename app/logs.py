"""One JSON line per request on stderr; health and metrics probes stay out of the log."""

from __future__ import annotations

import json
import logging
import sys
import time

ACCESS_LOGGER = "app.access"
QUIET_PATHS = ("/v2/health/", "/metrics")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


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
    if path.startswith(QUIET_PATHS) and status < 400:
        return
    logging.getLogger(ACCESS_LOGGER).info(
        "request",
        extra={
            "fields": {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
        },
    )
