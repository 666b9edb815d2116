"""The step commands: one module per command group, each with its flags, its step function and
its typed result. `all_commands()` is the one list of them, in pipeline order."""

from __future__ import annotations

from importlib import import_module

from .command import Command

# In pipeline order, so that `python -m aiship --help` reads like the pipeline.
MODULES = (
    "model_store",
    "build_image",
    "push_image",
    "verify_push",
    "attest",
    "evaluate",
    "image_tags",
    "aks_credentials",
    "deploy",
    "release_summary",
    "smoke_test",
    "setup",
    "publish_release",
    "local",
)


def all_commands() -> tuple[Command, ...]:
    """Every top-level command; importing the modules loads no SDK (they import those lazily)."""
    return tuple(
        command for module in MODULES for command in import_module(f"{__name__}.{module}").COMMANDS
    )
