"""`setup github` and `setup azure-devops`: approvals and settings as code, idempotent."""

from __future__ import annotations

from ..command import Command
from . import azure_devops, github

# The same gate in both systems.
APPROVALS = (
    "The approval gate is the same in both systems: a release waits until ANY ONE of the named "
    "reviewers approves it; whoever started the run cannot approve it; only main may deploy to "
    "production; releases run one at a time."
)

COMMANDS = (
    Command(
        "setup",
        help="create or update the production environment, approvals and settings",
        subcommands=(
            Command(
                "github",
                help="GitHub: environment with required reviewers, repository variables",
                description="The production environment (required reviewers, no self-review, "
                "deployments from main only) and the repository variables the workflows read. "
                + APPROVALS,
                flags=github.flags,
                check=github.check,
                run=github.run,
            ),
            Command(
                "azure-devops",
                help="Azure DevOps: environment with an approval check, variable group, pipelines",
                description="The production environment (an Approval check, an Exclusive Lock "
                "check), the variable group, both pipelines, their permits and the build "
                "validation of main. " + APPROVALS,
                flags=azure_devops.flags,
                check=azure_devops.check,
                run=azure_devops.run,
            ),
        ),
    ),
)
