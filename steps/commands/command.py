"""How a step command is declared: a name, its flags, and the function that runs it.

Each module of steps/commands lists its commands in `COMMANDS`; steps/cli.py builds the parser
from them and adds the flags every command has. A command's `run` returns a `Result`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

Flags = Callable[[argparse.ArgumentParser], None]


class Result(Protocol):
    """What a step hands on: `outputs()` names each output (flat: name -> text or number)."""

    def outputs(self) -> Mapping[str, object]: ...


def no_flags(parser: argparse.ArgumentParser) -> None:
    """For commands that take only the common flags."""


@dataclass(frozen=True)
class Command:
    """`python -m steps NAME ...`: runs `run`, or is a group of `subcommands`."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], Result] | None = None
    flags: Flags = no_flags
    description: str | None = None
    epilog: str | None = None
    subcommands: tuple[Command, ...] = ()

    def names(self) -> list[str]:
        """This command's full name and those of all below it, e.g. `local cluster up`."""
        if not self.subcommands:
            return [self.name]
        return [f"{self.name} {name}" for sub in self.subcommands for name in sub.names()]


REGISTRY_ENVIRONMENT = (
    "registry login: with --acr, Entra ID (DefaultAzureCredential: workload identity, managed "
    "identity or az login; AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_MANAGER_URL for other clouds); "
    "else REGISTRY_USERNAME and REGISTRY_PASSWORD (masked in CI), else anonymous. Registries on "
    "127.0.0.1/localhost are spoken to over http, all others over https."
)


def registry_flags(parser: argparse.ArgumentParser) -> None:
    """--acr and where to find it: the flags every command that talks to a registry has."""
    parser.add_argument("--acr", metavar="NAME", help="an Azure Container Registry, by name")
    parser.add_argument("--resource-group", help="the ACR's resource group (else: searched)")
    parser.add_argument("--subscription", help="the ACR's subscription [AZURE_SUBSCRIPTION_ID]")


def registry_login_of(args: argparse.Namespace):
    """(RegistryLogin, ImageRef) for a command with `registry_flags` and --image."""
    from ..clients.login import registry_login

    return registry_login(
        args.image, acr=args.acr, resource_group=args.resource_group, subscription=args.subscription
    )
