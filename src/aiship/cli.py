"""`aiship COMMAND` (or `python -m aiship COMMAND`): one thin command line around every step."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from .commands import all_commands
from .commands.command import Command, DryRun
from .support import errors, interrupts, logs, outputs

log = logging.getLogger("aiship")


class UsageError(Exception):
    """The command line itself is wrong: a flag missing, unknown or malformed (in COMMAND)."""

    def __init__(self, message: str, command: str):
        super().__init__(message)
        self.command = command


class Parser(argparse.ArgumentParser):
    """An ArgumentParser where an empty value of an optional flag means the flag was not given:
    `--digest ""` is `--digest` left out, as a pipeline passes an unset input. So the actions and
    templates pass every input as it is, with no shell code to drop the empty ones. (Each
    subcommand's parser is one of these: argparse hands it its own part of the command line.)"""

    def error(self, message: str) -> NoReturn:
        """A usage error fails as every step error does (main: annotated, --json), after the
        usage, rather than argparse's own exit."""
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}", self.prog.replace("python -m aiship", "aiship"))

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if args is not None:
            args = drop_empty(list(args), self.optional_values())
        return super().parse_known_args(args, namespace)

    def optional_values(self) -> set[str]:
        """The flags that take one value and may be left out (argument groups' too, which is
        why this reads argparse's own list of actions rather than wrapping add_argument)."""
        return {
            flag
            for action in self._actions
            if action.option_strings and not action.required and action.nargs is None
            for flag in action.option_strings
        }


def drop_empty(args: list[str], flags: set[str]) -> list[str]:
    """ARGS without `FLAG ""` and `FLAG=` for each of FLAGS; everything after `--` stays."""
    kept: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            return [*kept, arg, *rest]
        name, equals, value = arg.partition("=")
        if equals and name in flags and value == "":
            continue
        if arg in flags:
            following = next(rest, None)
            if following == "":
                continue
            kept.append(arg)
            if following is not None:
                kept.append(following)
            continue
        kept.append(arg)
    return kept


def build_parser(prog: str = "python -m aiship") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Pipeline steps for shipping an AI application (code + ONNX model).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--print-completion",
        action=PrintCompletion,
        choices=COMPLETION_SHELLS,
        help="print the completion script of the `aiship` command for this shell, e.g. "
        "`aiship --print-completion bash > ~/.local/share/bash-completion/completions/aiship`",
    )
    _add(parser, all_commands())
    return parser


COMPLETION_SHELLS = ("bash", "zsh", "tcsh", "fish")  # those shtab writes scripts for


class PrintCompletion(argparse.Action):
    """--print-completion SHELL: shtab's script for the installed `aiship` command (whatever
    name this parser was started under), read from the parser itself, then exit 0. shtab is
    imported only here: `aiship --help` and every step start without it."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=None, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, shell: Any, option: Any = None) -> None:
        import shtab

        completed = build_parser("aiship")
        for action in _all_actions(completed):
            if action.type is absolute_path:  # a path flag completes file and folder names
                action.complete = shtab.FILE  # type: ignore[attr-defined]
        sys.stdout.write(shtab.complete(completed, shell))
        parser.exit(0)


def _all_actions(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    """Every flag of PARSER and of all its subcommands, at any depth."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)


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
        dest=f"command_{depth}",
        required=True,
        metavar="COMMAND" if depth == 0 else "ACTION",
        parser_class=Parser,
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
        absolute_paths(sub)
        sub.add_argument("--json", action="store_true", help="print the outputs as JSON on stdout")
        sub.add_argument("-v", "--verbose", action="store_true", help="log SDK details too")
        sub.add_argument(
            "--dry-run",
            action="store_true",
            help="check every flag and setting, say what would be done, and do nothing",
        )
        sub.set_defaults(command=command)


def absolute_paths(parser: argparse.ArgumentParser) -> None:
    """Every path flag (`type=Path`) resolved once, here at the edge, against the folder the
    command was started in: a step that hands a path to a tool running elsewhere (Notation's
    trust store, a kubeconfig for kubectl) or changes folder cannot read it against another."""
    for action in parser._actions:  # argument groups' flags too
        if action.type is Path:
            action.type = absolute_path


def absolute_path(text: str) -> Path:
    return Path(text).expanduser().absolute()


# An Azure Pipelines macro, `$(NAME)`: the agent leaves it as written when NAME is not set.
MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")


def unexpanded_macro(argv: list[str], env: Mapping[str, str]) -> str | None:
    """Why the step must not start when a value reached it as a literal `$(NAME)` (in a flag, or
    in a setting of the variable group the steps read), else None: the step would otherwise run
    with the text "$(ACR_RESOURCE_GROUP)" as a resource group."""
    from .commands.setup.common import AZURE_VARIABLES

    given = []  # (value, where it was given)
    for index, arg in enumerate(argv):
        before = argv[index - 1] if index else ""
        if arg.startswith("--") and "=" in arg:  # --flag=VALUE
            given.append((arg, arg.partition("=")[0]))
        else:
            given.append((arg, before if before.startswith("--") else "the command line"))
    given += [(env[name], name) for name in AZURE_VARIABLES if name in env]
    for value, where in given:
        found = MACRO.search(value)
        if found:
            name = found.group(1)
            return (
                f"{found.group(0)} reached the step unexpanded (in {where}): the pipeline "
                f"variable {name} is not set; add it to the variable group "
                f"(aiship setup azure-devops --var {name}=VALUE) or to the pipeline's variables"
            )
    return None


def console() -> int:
    """The `aiship` console script: the same command line under its installed name."""
    return main(prog="aiship")


def main(argv: list[str] | None = None, prog: str = "python -m aiship") -> int:
    argv = sys.argv[1:] if argv is None else argv
    unexpanded = unexpanded_macro(argv, os.environ)
    if unexpanded:
        logs.configure(False)
        return failed(unexpanded, errors.ConfigError.exit_code, "aiship", "--json" in argv)
    try:
        args = build_parser(prog).parse_args(argv)
    except UsageError as exc:
        logs.configure(False)
        return failed(str(exc), errors.ConfigError.exit_code, exc.command, "--json" in argv)
    logs.configure(args.verbose)
    command: Command = args.command
    make_plan, run = command.plan, command.run
    if make_plan is None or run is None:  # argparse hands on leaves only
        raise TypeError(f"{command.name} is a group of commands")
    words = sorted((dest, word) for dest, word in vars(args).items() if dest.startswith("command_"))
    title = " ".join(["aiship", *(word for _, word in words)])  # e.g. "aiship setup github"
    try:
        plan = make_plan(args)  # every flag and setting, before anything is touched
        if args.dry_run:
            log.info("dry run: would %s", plan.describe())
            result = DryRun(plan.describe()).outputs()
        else:
            with interrupts.raised_as_exceptions():  # a cancelled job's SIGTERM runs clean-ups
                result = run(plan).outputs()
            outputs.publish(result)
    except errors.StepError as exc:
        outputs.publish(exc.outputs)
        return failed(str(exc), exc.exit_code, title, args.json)
    except interrupts.Interrupted as exc:
        return failed(f"interrupted by {exc.signal_name}", exc.exit_code, title, args.json)
    except KeyboardInterrupt:
        return failed("interrupted", 130, title, args.json)
    except OSError as exc:  # a file or folder the checks could not foresee: one line, no traceback
        log.debug("where it failed", exc_info=True)
        return failed(str(exc), 1, title, args.json)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


def failed(message: str, exit_code: int, title: str, as_json: bool) -> int:
    """The one way a step fails: `error: MESSAGE` in the log, the same as an error annotation of
    the CI system it runs in, and with --json `{"error": ..., "exit_code": ...}` on stdout."""
    log.error("error: %s", message)
    outputs.annotate_error(message, title)
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "exit_code": exit_code}) + "\n")
    return exit_code
