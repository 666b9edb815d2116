"""`setup github` and `setup azure-devops`: approvals and settings as code, idempotent."""

from __future__ import annotations

import argparse

from ..cli import add_common


def register(commands: argparse._SubParsersAction) -> None:
    from . import azure_devops, github

    setup = commands.add_parser(
        "setup", help="create or update the production environment, approvals and settings"
    )
    targets = setup.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, module, help_text in (
        ("github", github, "GitHub: environment with required reviewers, repository variables"),
        (
            "azure-devops",
            azure_devops,
            "Azure DevOps: environment with an approval check, variable group, pipelines",
        ),
    ):
        parser = add_common(targets.add_parser(name, help=help_text))
        module.add_arguments(parser)
        parser.set_defaults(run=module.run)
