"""`setup github` and `setup azure-devops`: approvals and settings as code, idempotent."""

from __future__ import annotations

from ..command import Command
from . import azure_devops, github

COMMANDS = (
    Command(
        "setup",
        help="create or update the production environment, approvals and settings",
        subcommands=(
            Command(
                "github",
                help="GitHub: environment with required reviewers, repository variables",
                flags=github.flags,
                check=github.check,
                run=github.run,
            ),
            Command(
                "azure-devops",
                help="Azure DevOps: environment with an approval check, variable group, pipelines",
                flags=azure_devops.flags,
                check=azure_devops.check,
                run=azure_devops.run,
            ),
        ),
    ),
)
