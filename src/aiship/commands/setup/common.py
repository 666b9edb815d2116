"""What both `setup` commands share: settings, flags, tokens, created/updated/unchanged."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ...support.errors import ConfigError
from ...support.outputs import mask

log = logging.getLogger(__name__)

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
ENVIRONMENT = "production"  # the approval gate: reviewers, one release at a time
STAGING = "staging"  # every release passes here first, with no one to wait for

# The repository variables GitHub's workflows read (`vars.NAME`) and the variable group's
# settings Azure's pipelines read (`$(NAME)`); tests/setup checks both against the YAML.
# CI signs with a Key Vault key through Notation's plugin (its archive's URL and sha256, from
# the plugin's release page); the release trusts the signer's X.509 subject.
SIGNING = (
    "SIGNING_KEY_ID",
    "NOTATION_AKV_PLUGIN_URL",
    "NOTATION_AKV_PLUGIN_SHA256",
    "NOTATION_AKV_PLUGIN_CONFIG",
    "SIGNING_IDENTITY",
)
GITHUB_VARIABLES = (
    "MODEL_STORE",
    "MODEL_NAME",
    "ACR_NAME",
    "ACR_RESOURCE_GROUP",
    "IMAGE_REPOSITORY",
    "BASE_IMAGE",
    "AZURE_CLIENT_ID",
    "AZURE_DEPLOY_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AKS_RESOURCE_GROUP",
    "AKS_CLUSTER",
    "K8S_NAMESPACE",
    "K8S_STAGING_NAMESPACE",
    *SIGNING,
)
AZURE_VARIABLES = (
    "MODEL_STORE",
    "MODEL_NAME",
    "ACR_NAME",
    "ACR_RESOURCE_GROUP",
    "IMAGE_REPOSITORY",
    "BASE_IMAGE",
    "AZURE_SUBSCRIPTION_ID",
    "AKS_RESOURCE_GROUP",
    "AKS_CLUSTER",
    "K8S_NAMESPACE",
    "K8S_STAGING_NAMESPACE",
    *SIGNING,
)
# Read by the steps from their environment rather than from a flag: GitHub's workflows map the
# variables into `env:`; Azure Pipelines exports every variable of the group to every script.
# (AzureCLI@2 signs az in but exports no subscription id: it must come from the group.)
STEP_ENVIRONMENT = ("AZURE_SUBSCRIPTION_ID", "BASE_IMAGE", "ACR_NAME", "ACR_RESOURCE_GROUP")
# Settings with a working default, never reported as unset: the base image, and a deploy identity
# of its own (without one the release signs in to the cluster as the CI identity).
OPTIONAL = ("BASE_IMAGE", "AZURE_DEPLOY_CLIENT_ID")
VAR = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.DOTALL)
# What the release's deploy identity needs, least privilege; setup says it when it is done.
DEPLOY_ROLES = (
    "the deploy identity needs: Azure Kubernetes Service Cluster User Role on the cluster; "
    "Azure Kubernetes Service RBAC Writer scoped to the staging and the production namespace; "
    "AcrPush on the registry, or on a registry with ABAC repository permissions Container "
    "Registry Repository Writer conditioned to the image's repository (it writes the staging "
    "pass and the deploy records next to the image); Reader on the registry resource (to find "
    "its login server)"
)


def parse_variables(items: Iterable[str], known: tuple[str, ...]) -> dict[str, str]:
    """`NAME=VALUE` flags as a dict; a malformed item or a name the pipelines never read stops."""
    variables: dict[str, str] = {}
    for item in items:
        match = VAR.match(item)
        if not match:
            raise ConfigError(f"--var {item.split('=')[0]!r} is not NAME=VALUE (NAME in capitals)")
        name, value = match.groups()
        if name not in known:
            raise ConfigError(
                f"--var {name}: the pipelines do not read it; known: {', '.join(known)}"
            )
        if name in variables:
            raise ConfigError(f"--var {name} is given twice: keep one")
        if name == "SIGNING_IDENTITY" and value:  # the release would refuse it at its first run
            from ...clients.notation import check_identity

            check_identity(value)
        variables[name] = value
    return variables


def parse_names(text: str, flag: str) -> list[str]:
    """A comma-separated list of names, blanks dropped; empty stops with the flag's name."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"{flag} is empty: give at least one name")
    if len(set(names)) != len(names):
        raise ConfigError(f"{flag} names someone twice: {text}")
    return names


def token_variable(names: tuple[str, ...], env: Mapping[str, str] | None = None) -> str:
    """The first of `names` that holds a token (the token itself is left alone)."""
    env = os.environ if env is None else env
    for name in names:
        if env.get(name, "").strip():
            return name
    raise ConfigError(f"no token: set {' or '.join(names)}")


def token_from_env(names: tuple[str, ...], env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(variable, token) of the first token set among `names`, masked in the CI log at once."""
    env = os.environ if env is None else env
    name = token_variable(names, env)
    token = env[name].strip()
    mask(token, env)
    return name, token


def plan_variables(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """created/updated/unchanged for each wanted variable, compared with what is there now."""
    return {
        name: UNCHANGED if current.get(name) == value else UPDATED if name in current else CREATED
        for name, value in wanted.items()
    }


def changed(states: Mapping[str, object]) -> bool:
    """True when any state, at any depth, is not `unchanged`."""
    return any(
        changed(state) if isinstance(state, Mapping) else state != UNCHANGED
        for state in states.values()
    )


@dataclass(frozen=True)
class SetupResult:
    """created/updated/unchanged for each item (or, for a group, each of its names), and the
    settings the pipelines read that are still unset."""

    states: Mapping[str, object]
    unset: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return changed(self.states)

    def outputs(self) -> dict[str, object]:
        return {**self.states, "changed": self.changed, "unset": list(self.unset)}


def report(states: Mapping[str, object], missing: Iterable[str]) -> SetupResult:
    """Log one line per item and warn about settings still unset."""
    for key, state in states.items():
        if isinstance(state, Mapping):
            for name, inner in state.items():
                log.info("%s %s: %s", key, name, inner)
        else:
            log.info("%s: %s", key, state)
    result = SetupResult(dict(states), tuple(sorted(set(missing) - set(OPTIONAL))))
    if result.unset:
        log.warning(
            "not set yet, though the pipelines read them: %s (pass --var NAME=VALUE)",
            ", ".join(result.unset),
        )
    if not result.changed:
        log.info("nothing changed: everything was already as asked")
    return result
