"""How a step command is declared: a name, its flags, and the function that runs it.

Each module of steps/commands lists its commands in `COMMANDS`; steps/cli.py builds the parser
from them and adds the flags every command has. Before `run`, the command line always calls
`check`: it validates every flag and setting without touching anything (no network, no files
written) and says in one line what `run` would do; `--dry-run` stops there. A command's `run`
returns a `Result`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..support.errors import ConfigError

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
    check: Callable[[argparse.Namespace], str] | None = None
    flags: Flags = no_flags
    description: str | None = None
    epilog: str | None = None
    subcommands: tuple[Command, ...] = ()

    def __post_init__(self) -> None:
        if not self.subcommands and (self.run is None or self.check is None):
            raise TypeError(f"command {self.name!r} needs a run and a check, or subcommands")

    def names(self) -> list[str]:
        """This command's full name and those of all below it, e.g. `local cluster up`."""
        if not self.subcommands:
            return [self.name]
        return [f"{self.name} {name}" for sub in self.subcommands for name in sub.names()]


REGISTRY_ENVIRONMENT = (
    "registry login: with --acr, Entra ID (DefaultAzureCredential: workload identity, managed "
    "identity or az login; AZURE_SUBSCRIPTION_ID; in other clouds AZURE_RESOURCE_MANAGER_URL and "
    "AZURE_CONTAINER_REGISTRY_AUDIENCE); "
    "else REGISTRY_USERNAME and REGISTRY_PASSWORD (masked in CI), else anonymous. Registries on "
    "127.0.0.1/localhost are spoken to over http, all others over https."
)


def registry_flags(parser: argparse.ArgumentParser) -> None:
    """--acr and where to find it: the flags every command that talks to a registry has."""
    parser.add_argument("--acr", metavar="NAME", help="an Azure Container Registry, by name")
    parser.add_argument("--resource-group", help="the ACR's resource group (else: searched)")
    parser.add_argument("--subscription", help="the ACR's subscription [AZURE_SUBSCRIPTION_ID]")


@dataclass(frozen=True)
class DryRun:
    """What --dry-run hands on: the plan, and nothing else."""

    plan: str

    def outputs(self) -> dict[str, object]:
        return {"dry_run": True, "plan": self.plan}


# Azure's rule for registry names; the login server is NAME.azurecr.io in Azure's public cloud.
ACR_NAME = re.compile(r"^[A-Za-z0-9]{5,50}$")


def check_acr(args: argparse.Namespace) -> str:
    """--acr's name and a subscription to find it in, or "" without --acr; no network."""
    if not args.acr:
        return ""
    from ..clients.azure import subscription_id

    if not ACR_NAME.match(args.acr):
        raise ConfigError(f"--acr {args.acr!r} is not a registry name: 5-50 letters and digits")
    return f"ACR {args.acr} in subscription {subscription_id(args.subscription)}"


def check_image(args: argparse.Namespace):
    """The ImageRef of --image as the registry commands will use it, checked without a network
    (with --acr and no registry in --image, the registry is shown as the ACR's login server)."""
    from ..clients.registry import ImageRef, check_credentials_env

    if check_acr(args):
        try:
            return ImageRef.parse(args.image)
        except ConfigError:
            return ImageRef.parse(args.image, default_registry=f"{args.acr.lower()}.azurecr.io")
    check_credentials_env()
    return ImageRef.parse(args.image)


def kubeconfig_of(args: argparse.Namespace) -> Path:
    """--kubeconfig, else KUBECONFIG: the file a kubernetes command talks to its cluster with."""
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not kubeconfig:
        raise ConfigError("give --kubeconfig (or set KUBECONFIG): aks-credentials writes one")
    return Path(kubeconfig)


def registry_login_of(args: argparse.Namespace):
    """(RegistryLogin, ImageRef) for a command with `registry_flags` and --image."""
    from ..clients.login import registry_login

    return registry_login(
        args.image, acr=args.acr, resource_group=args.resource_group, subscription=args.subscription
    )
