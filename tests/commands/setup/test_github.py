"""`setup github` against a local HTTPS fake of GitHub's REST API, with the real requests code."""

from __future__ import annotations

import json
import subprocess

import pytest

from aiship.clients.github import github_session
from aiship.commands.setup.github import GitHubSetup, setup_github
from aiship.support.errors import AuthError, ConfigError
from tests.clirun import run_steps
from tests.commands.setup.conftest import GITHUB_TOKEN, REPO
from tests.commands.setup.fakes import Seen

VARIABLES = {"MODEL_STORE": "azureblob://models", "ACR_NAME": "aishipacr"}


def run_setup(github, https_server, **overrides) -> dict:
    request = GitHubSetup(
        repo=REPO,
        reviewers=overrides.pop("reviewers", ["alice", "acme/release-managers"]),
        wait_timer=overrides.pop("wait_timer", 15),
        variables=overrides.pop("variables", VARIABLES),
    )
    with github_session(GITHUB_TOKEN) as session:
        return setup_github(request, session, https_server.url_for("")).outputs()


NAMED_BRANCHES = {"protected_branches": False, "custom_branch_policies": True}


def environment_put(name: str, reviewers: list[dict], wait_timer: int) -> Seen:
    return Seen(
        "PUT",
        f"/repos/{REPO}/environments/{name}",
        {},
        {
            "wait_timer": wait_timer,
            "prevent_self_review": bool(reviewers),
            "reviewers": reviewers,
            "deployment_branch_policy": NAMED_BRANCHES,
        },
    )


def main_only(name: str) -> Seen:
    return Seen(
        "POST",
        f"/repos/{REPO}/environments/{name}/deployment-branch-policies",
        {},
        {"name": "main", "type": "branch"},
    )


def test_first_run_creates_the_environments_and_variables(github, https_server):
    outputs = run_setup(github, https_server)

    assert outputs["environments"] == {"production": "created", "staging": "created"}
    assert outputs["branch_policies"] == {"production": "created", "staging": "created"}
    assert outputs["variables"] == {"MODEL_STORE": "created", "ACR_NAME": "created"}
    assert outputs["changed"] is True
    assert "MODEL_NAME" in outputs["unset"] and "MODEL_STORE" not in outputs["unset"]
    assert "K8S_STAGING_NAMESPACE" in outputs["unset"]
    base = f"/repos/{REPO}"
    assert github.writes() == [
        environment_put(
            "production", [{"type": "User", "id": 101}, {"type": "Team", "id": 201}], 15
        ),
        main_only("production"),
        environment_put("staging", [], 0),  # no one to wait for; only main deploys there too
        main_only("staging"),
        Seen(
            "POST",
            f"{base}/actions/variables",
            {},
            {"name": "MODEL_STORE", "value": "azureblob://models"},
        ),
        Seen("POST", f"{base}/actions/variables", {}, {"name": "ACR_NAME", "value": "aishipacr"}),
    ]
    assert github.variables == VARIABLES
    staging, production = github.environments["staging"], github.environments["production"]
    assert (staging["reviewers"], staging["wait_timer"]) == ([], 0)
    assert production["prevent_self_review"] is True


def test_second_run_writes_nothing_and_says_so(github, https_server, caplog):
    run_setup(github, https_server)
    github.requests.clear()

    with caplog.at_level("INFO"):
        outputs = run_setup(github, https_server)

    assert outputs["environments"] == {"production": "unchanged", "staging": "unchanged"}
    assert outputs["branch_policies"] == {"production": "unchanged", "staging": "unchanged"}
    assert outputs["variables"] == {"MODEL_STORE": "unchanged", "ACR_NAME": "unchanged"}
    assert outputs["changed"] is False
    assert github.writes() == []
    assert [r.method for r in github.requests] == ["GET"] * len(github.requests)
    assert "nothing changed" in caplog.text


def test_a_changed_setting_updates_only_that(github, https_server):
    run_setup(github, https_server)
    github.requests.clear()

    outputs = run_setup(
        github,
        https_server,
        reviewers=["alice", "bob"],
        wait_timer=15,
        variables={**VARIABLES, "ACR_NAME": "otheracr"},
    )

    assert outputs["environments"] == {"production": "updated", "staging": "unchanged"}
    assert outputs["variables"] == {"MODEL_STORE": "unchanged", "ACR_NAME": "updated"}
    assert github.writes() == [
        environment_put(
            "production", [{"type": "User", "id": 101}, {"type": "User", "id": 102}], 15
        ),
        Seen(
            "PATCH",
            f"/repos/{REPO}/actions/variables/ACR_NAME",
            {},
            {"name": "ACR_NAME", "value": "otheracr"},
        ),
    ]


def test_variables_are_read_across_pages(github, https_server):
    github.variables = {f"OTHER_{i:02}": str(i) for i in range(45)} | {"ACR_NAME": "aishipacr"}

    outputs = run_setup(github, https_server)

    assert outputs["variables"] == {"MODEL_STORE": "created", "ACR_NAME": "unchanged"}
    pages = [
        r.query
        for r in github.requests
        if r.path.endswith("/actions/variables") and r.method == "GET"
    ]
    assert pages == [{"per_page": "30"}, {"per_page": "30", "page": "2"}]


def test_server_errors_and_secondary_rate_limits_are_retried(github, https_server):
    github.failures = {
        ("GET", f"/repos/{REPO}"): [(502, {}), (503, {})],
        ("POST", f"/repos/{REPO}/actions/variables"): [(403, {"Retry-After": "0"})],
    }

    outputs = run_setup(github, https_server)

    assert outputs["variables"] == {"MODEL_STORE": "created", "ACR_NAME": "created"}
    assert [r.method for r in github.requests if r.path == f"/repos/{REPO}"] == ["GET"] * 3
    posts = [
        r.body["name"] for r in github.requests if r.method == "POST" and "variables" in r.path
    ]
    assert posts == ["MODEL_STORE", "MODEL_STORE", "ACR_NAME"]


def test_an_unknown_reviewer_stops_before_anything_is_written(github, https_server):
    with pytest.raises(ConfigError, match="reviewer carol not found on GitHub: check --reviewers"):
        run_setup(github, https_server, reviewers=["alice", "carol"])
    assert github.writes() == []


@pytest.mark.parametrize(
    ("denied", "permission"),
    [("administration", "administration: write"), ("variables", "variables: write")],
)
def test_a_missing_permission_names_it(github, https_server, denied, permission):
    github.denied = {denied}
    with pytest.raises(AuthError) as error:
        run_setup(github, https_server)
    assert f"permission '{permission}' on {REPO}" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_wrong_token_is_named(github, https_server):
    request = GitHubSetup(repo=REPO, reviewers=["alice"])
    with (
        github_session("not-the-token") as session,
        pytest.raises(AuthError, match="GITHUB_TOKEN or GH_TOKEN"),
    ):
        setup_github(request, session, https_server.url_for(""))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--repo", "acme"], "--repo 'acme' is not OWNER/NAME"),
        (["--var", "ACR_NAME"], "--var 'ACR_NAME' is not NAME=VALUE"),
        (["--var", "ACR=x"], "--var ACR: the pipelines do not read it"),
        (["--wait-timer", "99999"], "--wait-timer 99999: give 0 to 43200 minutes"),
    ],
)
def test_bad_flags_stop_before_any_request(github, https_server, flags, message):
    done = cli(https_server, ["--repo", REPO, "--reviewers", "alice", *flags])
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {message}" or done.stderr.startswith(f"error: {message}")
    assert github.requests == []


def cli(https_server, extra: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command line, in a process of its own, trusting the fake's CA."""
    command = ["setup", "github", "--api-url", https_server.url_for(""), *extra]
    token = {"GITHUB_TOKEN": GITHUB_TOKEN, **(env or {})}
    return run_steps(*command, env=token, drop=("GITHUB_", "GH_TOKEN"), timeout=60)


def test_the_command_line_runs_twice_then_fails_clearly_without_leaking_the_token(
    github, https_server
):
    args = ["--repo", REPO, "--reviewers", "alice", "--var", "MODEL_NAME=digits", "--json", "-v"]
    first = cli(https_server, args)
    second = cli(https_server, args)
    github.denied = {"variables"}
    failed = cli(https_server, ["--repo", REPO, "--reviewers", "alice"])

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["variables"] == {"MODEL_NAME": "created"}
    assert json.loads(second.stdout)["changed"] is False
    assert failed.returncode == 3
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        "error: the token may not list the repository variables (403): a fine-grained token "
        f"needs the repository permission 'variables: write' on {REPO}, a classic one the repo "
        "scope and admin rights"
    ]
    for done in (first, second, failed):
        assert GITHUB_TOKEN not in done.stdout + done.stderr


def test_in_github_actions_the_token_is_masked_first(github, https_server, tmp_path):
    outputs = tmp_path / "github_output"
    done = cli(
        https_server,
        ["--repo", REPO, "--reviewers", "alice"],
        env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"::add-mask::{GITHUB_TOKEN}"
    assert GITHUB_TOKEN not in "\n".join(done.stdout.splitlines()[1:]) + done.stderr
    assert 'environments={"production": "created", "staging": "created"}\n' in outputs.read_text()


def test_an_environment_open_to_every_branch_is_closed_again(github, https_server):
    """One that was edited by hand to let any branch deploy, or to allow self-review, is put
    back, and its branch policy kept."""
    run_setup(github, https_server)
    github.environments["production"]["deployment_branch_policy"] = None
    github.environments["production"]["prevent_self_review"] = False
    github.requests.clear()

    outputs = run_setup(github, https_server)

    assert outputs["environments"] == {"production": "updated", "staging": "unchanged"}
    assert outputs["branch_policies"] == {"production": "unchanged", "staging": "unchanged"}
    stored = github.environments["production"]
    assert stored["prevent_self_review"] is True
    assert stored["deployment_branch_policy"]["custom_branch_policies"] is True
    assert [p["name"] for p in stored["branch_policies"]] == ["main"]


def test_staging_edited_by_hand_gets_its_rules_back(github, https_server):
    """A reviewer or a wait timer added to staging would hold every release twice, and a branch
    opened there would hand the deploy identity to any branch: all of it is put back."""
    run_setup(github, https_server)
    github.environments["staging"].update(
        reviewers=[{"type": "User", "id": 102}],
        wait_timer=30,
        deployment_branch_policy={"protected_branches": True, "custom_branch_policies": False},
    )
    github.requests.clear()

    outputs = run_setup(github, https_server)

    assert outputs["environments"] == {"production": "unchanged", "staging": "updated"}
    assert github.writes() == [environment_put("staging", [], 0)]
    stored = github.environments["staging"]
    assert (stored["reviewers"], stored["wait_timer"]) == ([], 0)
    assert stored["deployment_branch_policy"] == NAMED_BRANCHES


def test_a_reviewer_without_access_is_named_and_nothing_else_is_written(github, https_server):
    github.no_access = {102}
    with pytest.raises(ConfigError) as raised:
        run_setup(github, https_server, reviewers=["alice", "bob"])

    message = str(raised.value)
    assert "422: Validation Failed; Reviewers must have read access to the repository" in message
    assert "check --reviewers" in message
    assert [(seen.method, seen.path.rsplit("/", 1)[-1]) for seen in github.writes()] == [
        ("PUT", "production")
    ]


def test_it_ends_naming_the_deploy_identitys_roles_and_credentials(github, https_server, caplog):
    with caplog.at_level("INFO"):
        run_setup(github, https_server)

    last = caplog.records[-1].getMessage()
    assert "AcrPush on the registry" in last and "RBAC Writer" in last
    assert last.endswith(
        f"federated credentials: repo:{REPO}:environment:production, "
        f"repo:{REPO}:environment:staging"
    )


def test_a_private_organization_repository_without_enterprise_says_what_to_do(github, https_server):
    """GitHub answers 422 for required reviewers of a private repository on a plan without
    them: not a reviewer's access, the plan; and nothing else is written."""
    github.visibility = "private"
    with pytest.raises(ConfigError) as raised:
        run_setup(github, https_server)

    assert str(raised.value) == (
        f"required reviewers on private repository {REPO} need GitHub Enterprise Cloud (422: "
        "Fail to create protected rule, please ensure billing plan include protected branch "
        f"gate.): make {REPO} public, or move it to an organization on GitHub Enterprise Cloud"
    )
    assert [(seen.method, seen.path.rsplit("/", 1)[-1]) for seen in github.writes()] == [
        ("PUT", "production")
    ]


def test_a_private_personal_repository_stops_before_anything_is_written(github, https_server):
    github.visibility, github.owner_type = "private", "User"
    with pytest.raises(ConfigError) as raised:
        run_setup(github, https_server)

    assert "need GitHub Enterprise Cloud (a personal account's repository): make" in str(
        raised.value
    )
    assert github.writes() == []


def test_a_private_repository_on_enterprise_gets_its_reviewers(github, https_server):
    github.visibility, github.enterprise = "private", True
    run_setup(github, https_server)

    assert github.environments["production"]["reviewers"]
