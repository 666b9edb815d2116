"""`setup github`: the `production` environment (required reviewers, no self-review, wait timer,
deployments from main only), the `staging` environment (no reviewers, deployments from main only)
and the repository variables the workflows read, through GitHub's REST API. Idempotent: the
current state is read first and only what differs is written.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import requests

from ...clients.github import (
    DEFAULT_API_URL,
    TOKEN_VARIABLES,
    GitHubApi,
    github_session,
    plan_lacks_reviewers,
)
from ...support.errors import ConfigError, NotFound, StepError
from .common import (
    CREATED,
    DEPLOY_ROLES,
    ENVIRONMENT,
    GITHUB_VARIABLES,
    STAGING,
    UNCHANGED,
    UPDATED,
    SetupResult,
    parse_names,
    parse_variables,
    plan_variables,
    report,
    token_from_env,
    token_variable,
)

log = logging.getLogger(__name__)

MAX_REVIEWERS = 6  # GitHub's limit for required reviewers
MAX_WAIT_TIMER = 43200  # minutes (30 days), GitHub's limit
MAX_PAGES = 20
ADMINISTRATION = "administration: write"
VARIABLES = "variables: write"
ACTIONS = "actions: read"
# Only the branches named in the environment's own policies may deploy to it (main): a workflow
# on any other branch cannot reach the deploy identity, whose federated credential names it.
NAMED_BRANCHES = {"protected_branches": False, "custom_branch_policies": True}


@dataclass(frozen=True)
class GitHubSetup:
    repo: str  # OWNER/NAME
    reviewers: Sequence[str]  # user logins, or ORG/TEAM for a team
    wait_timer: int = 0  # minutes
    variables: Mapping[str, str] = field(default_factory=dict)
    environment: str = ENVIRONMENT
    staging: str = STAGING  # no reviewers: a release waits at the gate after it, not before
    branch: str = "main"  # the only branch that may deploy to the environments

    def __post_init__(self) -> None:
        owner, _, name = self.repo.partition("/")
        if not owner or not name or "/" in name:
            raise ConfigError(f"--repo {self.repo!r} is not OWNER/NAME")
        if not 1 <= len(self.reviewers) <= MAX_REVIEWERS:
            raise ConfigError(f"--reviewers: give 1 to {MAX_REVIEWERS} users or teams")
        if not 0 <= self.wait_timer <= MAX_WAIT_TIMER:
            raise ConfigError(f"--wait-timer {self.wait_timer}: give 0 to {MAX_WAIT_TIMER} minutes")


def setup_github(request: GitHubSetup, session: requests.Session, api_url: str) -> SetupResult:
    """Bring the environment and variables to the requested state; return what changed."""
    api = GitHubApi(session, api_url, request.repo)
    repo_path = f"/repos/{request.repo}"
    repository = api.find(repo_path, what=f"read {request.repo}")
    if repository is None:
        raise NotFound(
            f"repository {request.repo} not found, or the token cannot see it: "
            "check --repo and the token's repository access"
        )
    check_reviewers_possible(request.repo, repository)
    # Everything is read before anything is written: a bad reviewer stops the step untouched.
    reviewers = [resolve_reviewer(api, name) for name in request.reviewers]
    # Production first: GitHub refuses a reviewer without access only when it is written, and
    # that refusal should leave nothing else written.
    wanted = {
        request.environment: environment_body(reviewers, request.wait_timer),
        request.staging: environment_body([], 0),
    }
    current = {
        name: api.find(
            f"{repo_path}/environments/{name}", what=f"read environment {name}", permission=ACTIONS
        )
        for name in wanted
    }
    current_variables = list_variables(api)

    environments: dict[str, str] = {}
    branch_policies: dict[str, str] = {}
    for name, body in wanted.items():
        path = f"{repo_path}/environments/{name}"
        environments[name] = ensure_environment(api, path, body, current[name])
        branch_policies[name] = ensure_branch_policy(api, path, request.branch)
    outputs: dict[str, object] = {"environments": environments, "branch_policies": branch_policies}

    states = plan_variables(current_variables, request.variables)
    for name, state in states.items():
        body = {"name": name, "value": request.variables[name]}
        if state == CREATED:
            api.call(
                "POST",
                f"{repo_path}/actions/variables",
                what=f"create variable {name}",
                permission=VARIABLES,
                json=body,
            )
        elif state == UPDATED:
            api.call(
                "PATCH",
                f"{repo_path}/actions/variables/{name}",
                what=f"update variable {name}",
                permission=VARIABLES,
                json=body,
            )
    outputs["variables"] = states
    missing = set(GITHUB_VARIABLES) - set(current_variables) - set(request.variables)
    result = report(outputs, missing)
    log.info(
        "%s; its federated credentials: %s",
        DEPLOY_ROLES,
        ", ".join(f"repo:{request.repo}:environment:{name}" for name in wanted),
    )
    return result


def check_reviewers_possible(repo: str, repository: Mapping) -> None:
    """Required reviewers on a private repository need GitHub Enterprise Cloud, which a personal
    account never has; an organization's plan is not shown to every token, so there GitHub's
    own refusal (422) says it."""
    visibility = repository.get("visibility", "private" if repository.get("private") else "public")
    if visibility == "private" and (repository.get("owner") or {}).get("type") == "User":
        raise ConfigError(plan_lacks_reviewers(repo, "a personal account's repository"))


def resolve_reviewer(api: GitHubApi, name: str) -> dict:
    """`login` → {"type": "User", "id": N}; `ORG/TEAM` → {"type": "Team", "id": N}."""
    org, _, team = name.partition("/")
    kind, path = ("Team", f"/orgs/{org}/teams/{team}") if team else ("User", f"/users/{name}")
    found = api.find(path, what=f"look up reviewer {name}")
    if found is None:
        raise ConfigError(
            f"reviewer {name} not found on GitHub: check --reviewers"
            + (
                " (a team needs the token's organization permission 'members: read')"
                if team
                else ""
            )
        )
    return {"type": kind, "id": found["id"]}


def environment_body(reviewers: list[dict], wait_timer: int) -> dict:
    """An environment as setup wants it; with no reviewers there is no one to bar."""
    return {
        "wait_timer": wait_timer,
        "prevent_self_review": bool(reviewers),  # whoever started the run cannot approve it
        "reviewers": reviewers,
        "deployment_branch_policy": NAMED_BRANCHES,
    }


def ensure_environment(api: GitHubApi, path: str, body: dict, current: dict | None) -> str:
    """The environment at PATH with BODY's rules, written only when what GitHub shows differs."""
    wanted = (
        sorted((r["type"], r["id"]) for r in body["reviewers"]),
        body["wait_timer"],
        body["prevent_self_review"],
        True,
    )
    if current is not None and protection_of(current) == wanted:
        return UNCHANGED
    name = path.rsplit("/", 1)[-1]
    api.call(
        "PUT",
        path,
        what=f"create or update environment {name}",
        permission=ADMINISTRATION,
        json=body,
    )
    return CREATED if current is None else UPDATED


def protection_of(environment: Mapping) -> tuple[list[tuple[str, int]], int, bool, bool]:
    """(sorted reviewers as (type, id), wait timer, whether self-review is barred, whether only
    the named branches may deploy) of an environment as GitHub reports it."""
    reviewers: list[tuple[str, int]] = []
    wait_timer, no_self_review = 0, False
    for rule in environment.get("protection_rules") or []:
        if rule.get("type") == "required_reviewers":
            reviewers += [(r["type"], r["reviewer"]["id"]) for r in rule.get("reviewers", [])]
            no_self_review = bool(rule.get("prevent_self_review"))
        elif rule.get("type") == "wait_timer":
            wait_timer = rule.get("wait_timer", 0)
    named_only = environment.get("deployment_branch_policy") == NAMED_BRANCHES
    return sorted(reviewers), wait_timer, no_self_review, named_only


def ensure_branch_policy(api: GitHubApi, environment_path: str, branch: str) -> str:
    """The environment's one custom deployment branch policy: BRANCH."""
    path = f"{environment_path}/deployment-branch-policies"
    what = f"read the deployment branches of {environment_path.rsplit('/', 1)[-1]}"
    found = api.call("GET", path, what=what, permission=ADMINISTRATION).json()
    names = {(p.get("name"), p.get("type", "branch")) for p in found.get("branch_policies", [])}
    if (branch, "branch") in names:
        return UNCHANGED
    api.call(
        "POST",
        path,
        what=f"let {branch} deploy to the environment",
        permission=ADMINISTRATION,
        json={"name": branch, "type": "branch"},
    )
    return CREATED


def list_variables(api: GitHubApi) -> dict[str, str]:
    """All repository variables, following GitHub's pages (bounded)."""
    variables: dict[str, str] = {}
    url: str | None = f"/repos/{api.repo}/actions/variables"
    params: dict[str, object] | None = {"per_page": 30}
    for _ in range(MAX_PAGES):
        if url is None:
            return variables
        response = api.call(
            "GET", url, what="list the repository variables", permission=VARIABLES, params=params
        )
        variables.update({v["name"]: v["value"] for v in response.json()["variables"]})
        url, params = response.links.get("next", {}).get("url"), None
    raise StepError(f"more than {MAX_PAGES} pages of repository variables: clean some up")


@dataclass(frozen=True)
class GitHubPlan:
    """The setup wanted, the API to ask, and the variable holding the token (not the token)."""

    request: GitHubSetup
    api_url: str
    token_variable: str

    def describe(self) -> str:
        request = self.request
        return (
            f"set up environments {request.staging} and {request.environment} of {request.repo} "
            f"(reviewers {', '.join(request.reviewers)}) and {len(request.variables)} "
            f"variable(s) through {self.api_url} with {self.token_variable}"
        )


def plan(args: argparse.Namespace) -> GitHubPlan:
    request = GitHubSetup(
        repo=args.repo,
        reviewers=parse_names(args.reviewers, "--reviewers"),
        wait_timer=args.wait_timer,
        variables=parse_variables(args.var, GITHUB_VARIABLES),
    )
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    return GitHubPlan(request, api_url, token_variable(TOKEN_VARIABLES))


def run(plan: GitHubPlan) -> SetupResult:
    _, token = token_from_env((plan.token_variable,))
    with github_session(token) as session:
        return setup_github(plan.request, session, plan.api_url)


def flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="OWNER/NAME")
    parser.add_argument(
        "--reviewers", required=True, help="required reviewers: user logins or ORG/TEAM, by commas"
    )
    parser.add_argument("--wait-timer", type=int, default=0, help="minutes to wait (default 0)")
    parser.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a repository variable"
    )
    parser.add_argument(
        "--api-url", help=f"GitHub API (default: $GITHUB_API_URL, else {DEFAULT_API_URL})"
    )
