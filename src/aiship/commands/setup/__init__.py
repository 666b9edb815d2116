"""`setup github` and `setup azure-devops`: approvals and settings as code, idempotent."""

from __future__ import annotations

from ..command import Command
from . import azure_devops, github

# The same gate in both systems.
APPROVALS = (
    "The approval gate is the same in both systems: a release waits until ANY ONE of the named "
    "reviewers approves it; whoever started the run cannot approve it; only main may deploy to "
    "production; releases run one at a time. Every release passes the staging environment "
    "first (no reviewers)."
)

COMMANDS = (
    Command(
        "setup",
        help="create or update the staging and production environments, approvals, settings",
        subcommands=(
            Command(
                "github",
                help="GitHub: environments (production's with reviewers), repository variables",
                description="The production environment (required reviewers, no self-review, "
                "deployments from main only), the staging environment and the repository "
                "variables the workflows read. " + APPROVALS + " Last, it names the deploy "
                "identity's roles and its federated credentials (one per environment).",
                flags=github.flags,
                plan=github.plan,
                run=github.run,
            ),
            Command(
                "azure-devops",
                help="Azure DevOps: environments, an approval check, variable group, pipelines",
                description="The production environment (an Approval check, an Exclusive Lock "
                "check), the staging environment (an Exclusive Lock check), Branch control "
                "checks (main only) on both environments and both service connections, the "
                "variable group, both pipelines, their permits and the build validation of main. "
                + APPROVALS
                + " Last, it names the roles of the deploy service connection's identity.",
                flags=azure_devops.flags,
                plan=azure_devops.plan,
                run=azure_devops.run,
            ),
        ),
    ),
)
