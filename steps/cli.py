"""`python -m steps COMMAND`: one thin command line around every step function.

A step module exposes `register(commands)`, which adds its subparser and sets `run`, a function
taking the parsed arguments and returning the step's outputs as a dict.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from . import errors, logs, outputs

log = logging.getLogger("steps")


def step_modules() -> list:
    """Each module that contributes commands; imported here, not at package import."""
    from . import (
        aks_credentials,
        deploy,
        image_build,
        image_tags,
        model_store,
        push_image,
        setup,
        smoke_test,
        verify_push,
    )
    from .local import cli as local_cli

    # In pipeline order, so `--help` reads like the pipeline.
    return [
        model_store,
        image_build,
        push_image,
        verify_push,
        image_tags,
        aks_credentials,
        deploy,
        smoke_test,
        setup,
        local_cli,
    ]


def build_parser(modules: list) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m steps",
        description="Pipeline steps for shipping an AI application (code + ONNX model).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in modules:
        module.register(commands)
    return parser


def add_common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags every step command has."""
    parser.add_argument("--json", action="store_true", help="print the outputs as JSON on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log SDK details too")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(step_modules())
    args = parser.parse_args(argv)
    logs.configure(getattr(args, "verbose", False))
    run: Callable[[argparse.Namespace], dict] = args.run
    try:
        result = run(args)
    except errors.StepError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("error: interrupted")
        return 130
    outputs.publish(result)
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result) + "\n")
    return 0
