"""`aks-credentials`: a kubeconfig for an AKS cluster, from the Resource Manager API.

Cluster-user credentials by default (`--admin` only when asked). The file is written with mode
0600 and never printed. Entra ID clusters hand out a kubeconfig that runs kubelogin; it is
converted to the sign-in this machine has (workload identity in CI, else the Azure CLI).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..clients import azure
from ..clients.sdk_errors import azure_errors
from ..support.errors import ConfigError, StepError
from ..support.files import write_private
from ..support.processes import last_line, run
from .command import Command

log = logging.getLogger(__name__)

USER_ROLE = "Azure Kubernetes Service Cluster User Role"
ADMIN_ROLE = "Azure Kubernetes Service Cluster Admin Role"


@dataclass(frozen=True)
class AksCredentials:
    kubeconfig: str
    context: str
    server: str
    admin: bool
    entra_id: bool

    def outputs(self) -> dict[str, str]:
        return {"kubeconfig": self.kubeconfig, "context": self.context}


def aks_credentials(
    resource_group: str,
    cluster: str,
    out: Path,
    *,
    subscription: str | None,
    admin: bool = False,
    client: Any = None,
) -> AksCredentials:
    """Fetch the kubeconfig and write it to `out` (0600), converted for kubelogin if needed.
    `subscription` None means AZURE_SUBSCRIPTION_ID."""
    from azure.mgmt.containerservice import ContainerServiceClient

    subscription = azure.subscription_id(subscription)
    client = client or azure.management_client(ContainerServiceClient, subscription)
    what = (
        f"AKS cluster '{cluster}' in resource group '{resource_group}' "
        f"of subscription '{subscription}'"
    )
    with azure_errors(
        what,
        role=ADMIN_ROLE if admin else USER_ROLE,
        fix_not_found="check --cluster, --resource-group and --subscription",
    ):
        if admin:
            results = client.managed_clusters.list_cluster_admin_credentials(
                resource_group, cluster
            )
        else:
            results = client.managed_clusters.list_cluster_user_credentials(
                resource_group, cluster, format="exec"
            )
    if not results.kubeconfigs:
        raise StepError(f"{what} returned no kubeconfig")
    raw = results.kubeconfigs[0].value
    config = yaml.safe_load(raw)
    entra_id = uses_kubelogin(config)
    write_private(out, raw)
    if entra_id:
        convert_for_kubelogin(out)
    context = config.get("current-context", "")
    server = config["clusters"][0]["cluster"]["server"]
    log.info(
        "wrote %s credentials for %s to %s (context %s)",
        "admin" if admin else "user",
        cluster,
        out,
        context,
    )
    return AksCredentials(str(out), context, server, admin, entra_id)


def uses_kubelogin(config: dict) -> bool:
    users = config.get("users") or []
    return any(
        (u.get("user") or {}).get("exec", {}).get("command", "").endswith("kubelogin")
        for u in users
    )


def convert_for_kubelogin(path: Path) -> None:
    kubelogin = shutil.which("kubelogin")
    login = "workloadidentity" if os.environ.get("AZURE_FEDERATED_TOKEN_FILE") else "azurecli"
    if kubelogin is None:
        path.unlink()
        raise ConfigError(
            "the cluster uses Entra ID sign-in, which needs kubelogin on PATH: install it "
            f"(e.g. `az aks install-cli`, or azure/use-kubelogin in GitHub), then run again "
            f"(it will be set up for --login {login})"
        )
    try:
        result = run(
            [kubelogin, "convert-kubeconfig", "--login", login, "--kubeconfig", str(path)],
            what="kubelogin convert-kubeconfig",
            timeout=60,
        )
    except StepError:
        path.unlink()
        raise
    if result.returncode != 0:
        path.unlink()
        raise StepError(f"kubelogin convert-kubeconfig failed: {last_line(result.stderr)[:200]}")


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resource-group", help="the AKS cluster's group [AKS_RESOURCE_GROUP]")
    parser.add_argument("--cluster", help="the AKS cluster's name [AKS_CLUSTER]")
    parser.add_argument("--subscription", help="[AZURE_SUBSCRIPTION_ID]")
    parser.add_argument("--out", required=True, type=Path, help="kubeconfig file to write (0600)")
    parser.add_argument(
        "--admin",
        action="store_true",
        help="cluster-admin credentials (needs the admin role; never the default)",
    )


@dataclass(frozen=True)
class CredentialsPlan:
    resource_group: str
    cluster: str
    subscription: str
    out: Path
    admin: bool = False

    def describe(self) -> str:
        kind = "cluster-admin" if self.admin else "cluster-user"
        return (
            f"write {kind} credentials of AKS cluster {self.cluster} (resource group "
            f"{self.resource_group}, subscription {self.subscription}) to {self.out}"
        )


def _plan(args: argparse.Namespace) -> CredentialsPlan:
    settings = {
        "--resource-group": (args.resource_group, "AKS_RESOURCE_GROUP"),
        "--cluster": (args.cluster, "AKS_CLUSTER"),
    }
    given = {}
    for flag, (value, variable) in settings.items():
        given[flag] = (value or os.environ.get(variable) or "").strip()
        if not given[flag]:
            raise ConfigError(f"no {flag}: give the AKS cluster's {flag[2:]} (or set {variable})")
    subscription = azure.subscription_id(args.subscription)
    return CredentialsPlan(
        given["--resource-group"], given["--cluster"], subscription, args.out, args.admin
    )


def _run(plan: CredentialsPlan) -> AksCredentials:
    return aks_credentials(
        plan.resource_group,
        plan.cluster,
        plan.out,
        subscription=plan.subscription,
        admin=plan.admin,
    )


COMMANDS = (
    Command(
        "aks-credentials",
        help="write a kubeconfig for an AKS cluster (cluster-user by default)",
        flags=_flags,
        plan=_plan,
        run=_run,
    ),
)
