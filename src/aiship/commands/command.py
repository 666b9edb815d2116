"""How a step command is declared: a name, its flags, a plan made from them, and the step that
carries the plan out.

Each module of commands/ lists its commands in `COMMANDS`; cli.py builds the parser from them and
adds the flags every command has. The command line reads the flags once, in `plan`: it validates
every flag and setting without touching anything (no network, no files written) and returns a
frozen `Plan` that holds all `run` needs and says in one line what it would do; `--dry-run` stops
there. `run` takes that plan, never the flags, so a dry run and a real run cannot disagree on
what is valid. It returns a `Result`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..support.errors import ConfigError

if TYPE_CHECKING:
    from ..clients.registry import ImageRef, RegistryLogin

Flags = Callable[[argparse.ArgumentParser], None]


class Plan(Protocol):
    """What a command will do, checked: `describe()` says it in one line."""

    def describe(self) -> str: ...


class Result(Protocol):
    """What a step hands on: `outputs()` names each output (flat: name -> text or number)."""

    def outputs(self) -> Mapping[str, object]: ...


def no_flags(parser: argparse.ArgumentParser) -> None:
    """For commands that take only the common flags."""


TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0", "")


def switch(text: str) -> bool:
    """A yes/no flag's value as both CI systems write a boolean (true, True, false, False) or a
    person would; empty is no."""
    if text.strip().lower() in TRUE:
        return True
    if text.strip().lower() in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def add_switch(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """FLAG alone turns it on; FLAG true|false sets it, so a pipeline can pass its input as is."""
    parser.add_argument(
        flag, nargs="?", type=switch, const=True, default=False, metavar="true|false", help=help
    )


@dataclass(frozen=True)
class Says:
    """The plan of a command that takes nothing but the common flags: what it does."""

    text: str

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class Command:
    """`aiship NAME ...`: plans from the flags and runs the plan, or is a group of
    `subcommands`."""

    name: str
    help: str
    plan: Callable[[argparse.Namespace], Any] | None = None
    run: Callable[[Any], Result] | None = None
    flags: Flags = no_flags
    description: str | None = None
    epilog: str | None = None
    subcommands: tuple[Command, ...] = ()

    def __post_init__(self) -> None:
        if not self.subcommands and (self.run is None or self.plan is None):
            raise TypeError(f"command {self.name!r} needs a plan and a run, or subcommands")

    def names(self) -> list[str]:
        """This command's full name and those of all below it, e.g. `local cluster up`."""
        if not self.subcommands:
            return [self.name]
        return [f"{self.name} {name}" for sub in self.subcommands for name in sub.names()]


@dataclass(frozen=True)
class DryRun:
    """What --dry-run hands on: the plan, and nothing else."""

    plan: str

    def outputs(self) -> dict[str, object]:
        return {"dry_run": True, "plan": self.plan}


# --- the registry: --image with --acr, --resource-group, --subscription ------------------------

REGISTRY_ENVIRONMENT = (
    "registry login: with --acr (or ACR_NAME), Entra ID (DefaultAzureCredential: workload "
    "identity, managed identity or az login; AZURE_SUBSCRIPTION_ID; in other clouds "
    "AZURE_RESOURCE_MANAGER_URL and AZURE_CONTAINER_REGISTRY_AUDIENCE); "
    "else REGISTRY_USERNAME and REGISTRY_PASSWORD (masked in CI), else anonymous. Registries on "
    "127.0.0.1/localhost are spoken to over http, all others over https."
)

# Azure's rule for registry names; the login server is NAME.azurecr.io in Azure's public cloud.
ACR_NAME = re.compile(r"^[A-Za-z0-9]{5,50}$")


def registry_flags(parser: argparse.ArgumentParser) -> None:
    """--acr and where to find it: the flags every command that talks to a registry has. Each
    defaults from the setting the pipelines already set."""
    parser.add_argument("--acr", metavar="NAME", help="an Azure Container Registry [ACR_NAME]")
    parser.add_argument(
        "--resource-group", help="the ACR's resource group (else: searched) [ACR_RESOURCE_GROUP]"
    )
    parser.add_argument("--subscription", help="the ACR's subscription [AZURE_SUBSCRIPTION_ID]")


@dataclass(frozen=True)
class AcrTarget:
    """An Azure Container Registry by name, and where to look for it."""

    name: str
    subscription: str
    resource_group: str | None = None

    def describe(self) -> str:
        group = f", group {self.resource_group}" if self.resource_group else ""
        return f"ACR {self.name} in subscription {self.subscription}{group}"


def acr_target(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> AcrTarget | None:
    """--acr (else ACR_NAME) with its group and subscription, checked without a network; None
    when neither names a registry."""
    env = os.environ if env is None else env
    name = args.acr or env.get("ACR_NAME")
    if not name:
        return None
    from ..clients.azure import subscription_id

    if not ACR_NAME.match(name):
        raise ConfigError(f"--acr {name!r} is not a registry name: 5-50 letters and digits")
    group = args.resource_group or env.get("ACR_RESOURCE_GROUP") or None
    return AcrTarget(name, subscription_id(args.subscription, env), group)


@dataclass(frozen=True)
class RegistryImage:
    """--image and how to sign in to its registry, checked: `image` is the name as the step will
    use it (with an ACR and no registry in --image, shown at the ACR's usual login server)."""

    image: ImageRef
    given: str
    acr: AcrTarget | None = None

    def login(self) -> tuple[RegistryLogin, ImageRef]:
        """Sign in (the ACR resolved through Resource Manager) and name the image in full."""
        from ..clients.login import registry_login

        acr = self.acr
        return registry_login(
            self.given,
            acr=acr.name if acr else None,
            resource_group=acr.resource_group if acr else None,
            subscription=acr.subscription if acr else None,
        )


def registry_image(args: argparse.Namespace) -> RegistryImage:
    """The RegistryImage of --image and the registry flags (or their settings); no network."""
    from ..clients.registry import ImageRef, check_credentials_env

    given = args.image
    acr = acr_target(args)
    if acr:
        try:
            return RegistryImage(ImageRef.parse(given), given, acr)
        except ConfigError:
            login_server = f"{acr.name.lower()}.azurecr.io"
            return RegistryImage(ImageRef.parse(given, default_registry=login_server), given, acr)
    check_credentials_env()
    return RegistryImage(ImageRef.parse(given), given)


def pinned_image(args: argparse.Namespace, what: str = "the image") -> RegistryImage:
    """registry_image, for a command that takes WHAT by digest only."""
    target = registry_image(args)
    if not target.image.digest:
        raise ConfigError(f"--image {target.image}: give {what} by digest (REPOSITORY@sha256:...)")
    return target


def kubeconfig_of(args: argparse.Namespace) -> Path:
    """--kubeconfig, else KUBECONFIG: the file a kubernetes command talks to its cluster with."""
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not kubeconfig:
        raise ConfigError("give --kubeconfig (or set KUBECONFIG): aks-credentials writes one")
    return Path(kubeconfig)
