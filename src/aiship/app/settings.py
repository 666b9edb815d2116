"""Service settings: one typed object, read from flags or the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


# setting -> (environment variable, lowest, highest)
INTEGER_SETTINGS = {
    "port": ("PORT", 1, 65535),
    "workers": ("WORKERS", 1, 64),
    "max_batch_size": ("MAX_BATCH_SIZE", 1, 1_000_000),
    "max_request_bytes": ("MAX_REQUEST_BYTES", 1024, 1 << 31),
    "request_timeout": ("REQUEST_TIMEOUT", 1, 3600),
}


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) or 1


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    max_batch_size: int = 256
    max_request_bytes: int = 4 * 1024 * 1024
    request_timeout: int = 30  # seconds a request may run before its worker is replaced
    revision: str = "unknown"  # git revision of the application code

    def __post_init__(self) -> None:
        for name, (variable, low, high) in INTEGER_SETTINGS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise SettingsError(f"{variable}={value} is out of range: use {low}..{high}")

    @classmethod
    def from_env(cls, env: Mapping[str, str], **flags: object) -> Settings:
        """Flags that are not None win over MODEL_DIR, HOST, PORT, WORKERS, ..."""
        values: dict[str, object] = {
            "model_dir": env.get("MODEL_DIR"),
            "host": env.get("HOST"),
            "revision": env.get("APP_REVISION"),
        }
        for name, (variable, _, _) in INTEGER_SETTINGS.items():
            values[name] = _int(env, variable)
        values.update({k: v for k, v in flags.items() if v is not None})
        if not values["model_dir"]:
            raise SettingsError("no model directory: pass --model-dir DIR or set MODEL_DIR")
        values["model_dir"] = Path(str(values["model_dir"]))
        # Any: each value has its own field's type (Path, int or str), which no one dict type says
        fields: dict[str, Any] = {k: v for k, v in values.items() if v not in (None, "")}
        return cls(**fields)

    def onnx_threads(self) -> int:
        """Intra-op threads per worker, so that all workers together fill the CPUs once."""
        return max(1, available_cpus() // self.workers)


def _int(env: Mapping[str, str], variable: str) -> int | None:
    raw = env.get(variable)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{variable}={raw!r} is not an integer") from None
