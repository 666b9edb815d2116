"""The fakes of GitHub and Azure DevOps are held to the services' official REST descriptions
(tests/contracts): every request setup sends and every answer a fake gives is checked as it
happens, and the fixtures fail a test whose traffic left the description."""

from __future__ import annotations

from aiship.clients.azure_devops import connect
from aiship.clients.github import github_session
from aiship.commands.setup.azure_devops import AzureDevOpsSetup, setup_azure_devops
from aiship.commands.setup.github import GitHubSetup, setup_github
from tests.commands.setup.conftest import DEVOPS_PAT, GITHUB_TOKEN, ORG, PROJECT, REPO


def github_setup(https_server) -> None:
    request = GitHubSetup(REPO, ["alice", "acme/release-managers"], 5, {"MODEL_NAME": "digits"})
    with github_session(GITHUB_TOKEN) as session:
        setup_github(request, session, https_server.url_for(""))


def test_a_github_setup_is_judged_call_by_call(github, https_server):
    github_setup(https_server)
    github_setup(https_server)  # the second run reads what the first wrote

    assert github.held.checked == len(github.requests) >= 10
    assert github.held.violations == []


def test_an_answer_outside_githubs_description_is_caught(github, https_server):
    shown = github.environment_json
    github.environment_json = lambda name: {**shown(name), "protection_rules": "none"}

    github_setup(https_server)

    assert any("protection_rules" in v for v in github.held.violations)
    github.held.violations.clear()  # the fixture's own check would fail the test otherwise


def test_an_azure_devops_setup_is_judged_call_by_call(devops, https_server):
    request = AzureDevOpsSetup(
        f"{https_server.url_for('')}{ORG}",
        PROJECT,
        ["alice@example.com"],
        {"MODEL_NAME": "digits"},
        service_connection="aiship-azure",
        deploy_service_connection="aiship-azure-deploy",  # checks on connections are judged too
    )
    setup_azure_devops(request, connect(request.org_url, "AZURE_DEVOPS_EXT_PAT", DEVOPS_PAT))

    discovery = [r for r in devops.requests if r.method == "OPTIONS" or "ResourceAreas" in r.path]
    assert devops.held.checked == len(devops.requests) - len(discovery) >= 15
    assert devops.held.violations == []


def test_identities_are_read_where_the_service_says_they_live(devops, https_server):
    """As on the hosted service, the identity area lives on another host (vssps there): the
    SDK must follow {org}/_apis/ResourceAreas rather than assume the organization's URL."""
    request = AzureDevOpsSetup(
        f"{https_server.url_for('')}{ORG}", PROJECT, ["alice@example.com"], {"MODEL_NAME": "m"}
    )
    setup_azure_devops(request, connect(request.org_url, "AZURE_DEVOPS_EXT_PAT", DEVOPS_PAT))

    hosts = {host.split(":")[0] for host, path in devops.hosts if path.endswith("/Identities")}
    others = {host.split(":")[0] for host, path in devops.hosts if "Identities" not in path}
    assert hosts == {"localhost"}
    assert "127.0.0.1" in others
