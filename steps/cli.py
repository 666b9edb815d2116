"""`python -m steps COMMAND`: one thin command line around every step function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from .commands import all_commands
from .commands.command import Command, DryRun
from .support import errors, logs, outputs

log = logging.getLogger("steps")


def build_parser(prog: str = "python -m steps") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Pipeline steps for shipping an AI application (code + ONNX model).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _add(parser, all_commands())
    return parser


def _version() -> str:
    """The installed aiship's version: what a pipeline pinned (a checkout run with PYTHONPATH
    alone has no installed metadata)."""
    try:
        return version("aiship")
    except PackageNotFoundError:
        return "(not installed)"


def _add(parser: argparse.ArgumentParser, commands: Iterable[Command], depth: int = 0) -> None:
    """A subparser per command; groups nest (`setup github`, `local cluster up`)."""
    choices = parser.add_subparsers(
        dest=f"command_{depth}", required=True, metavar="COMMAND" if depth == 0 else "ACTION"
    )
    for command in commands:
        sub = choices.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=command.epilog,
        )
        if command.subcommands:
            _add(sub, command.subcommands, depth + 1)
            continue
        command.flags(sub)
        sub.add_argument("--json", action="store_true", help="print the outputs as JSON on stdout")
        sub.add_argument("-v", "--verbose", action="store_true", help="log SDK details too")
        sub.add_argument(
            "--dry-run",
            action="store_true",
            help="check every flag and setting, say what would be done, and do nothing",
        )
        sub.set_defaults(command=command)


def console() -> int:
    """The `aiship` console script: the same command line under its installed name."""
    return main(prog="aiship")


def main(argv: list[str] | None = None, prog: str = "python -m steps") -> int:
    args = build_parser(prog).parse_args(argv)
    logs.configure(args.verbose)
    command: Command = args.command
    try:
        plan = command.check(args)  # every flag and setting, before anything is touched
        if args.dry_run:
            log.info("dry run: would %s", plan)
            result = DryRun(plan).outputs()
        else:
            result = command.run(args).outputs()
            outputs.publish(result)
    except errors.StepError as exc:
        log.error("error: %s", exc)
        outputs.publish(exc.outputs)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("error: interrupted")
        return 130
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0
