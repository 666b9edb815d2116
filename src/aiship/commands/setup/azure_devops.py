"""`setup azure-devops`: the `production` environment with an Approval and an Exclusive Lock check,
the `staging` environment with an Exclusive Lock check, the variable group `aiship`, the two
pipelines from .azure-pipelines/ with their permits, and a build-validation policy on main,
through the azure-devops SDK. Idempotent: everything is read first, then only what differs is
written.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ...clients.azure_devops import (
    CHECK_CONFIGURATIONS,
    PIPELINES_API,
    TOKEN_VARIABLES,
    connect,
    send_json,
)
from ...clients.sdk_errors import azure_devops_errors
from ...support.errors import ConfigError, Conflict, NotFound
from .common import (
    AZURE_VARIABLES,
    CREATED,
    DEPLOY_ROLES,
    ENVIRONMENT,
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

VARIABLE_GROUP = "aiship"
# The pipelines' default service connections: the CI identity, and the deploy identity, the one
# with the cluster's roles (a scheduled release passes no parameters, so its default is used).
SERVICE_CONNECTION = "aiship-azure"
DEPLOY_SERVICE_CONNECTION = "aiship-azure-deploy"
# Each pipeline and its YAML in the repository being set up: by default another project's files,
# as README shows them (this repository keeps its own in .azure-pipelines/: --ci-yaml and
# --release-yaml name those).
PIPELINES = {
    "aiship-ci": "azure-pipelines/ci.yml",
    "aiship-release": "azure-pipelines/release.yml",
}
YAML_FLAGS = {"aiship-ci": "--ci-yaml", "aiship-release": "--release-yaml"}
DEPLOYING_PIPELINES = ("aiship-release",)  # only these may use the environments
APPROVAL_TYPE = {"id": "8c6f20a7-a545-4486-9777-f762fafe0d4d", "name": "Approval"}
# Pre-check and post-check approvals share the Approval type; `settings.definitionRef` tells
# the plain approval apart from them (a check without one is a plain approval too).
APPROVAL_DEFINITION = {"id": "26014962-64a0-49f4-885b-4b874119a5cc", "name": "approval"}
# Branch control is a Task Check running the service's `evaluatebranchProtection` check.
TASK_CHECK_TYPE = {"id": "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7", "name": "Task Check"}
BRANCH_CONTROL_DEFINITION = {
    "id": "86b05a0c-73e6-4f7d-b3cf-e38f3b39a75b",
    "name": "evaluatebranchProtection",
    "version": "0.0.1",
}
BRANCH_CONTROL_TIMEOUT = 1440  # minutes; it is judged at once (no retries)
EXCLUSIVE_LOCK_TYPE = {"id": "2ef31ad6-baa0-403a-8b45-2cbc9b4e5563", "name": "ExclusiveLock"}
BUILD_POLICY_TYPE = "0609b952-1397-4640-95ec-e00a01b2c241"  # Build (validation) policy
BUILD_VALIDITY = 720  # minutes a passed build counts for a pull request
APPROVAL_TIMEOUT = 43200  # minutes a run waits for approval (30 days, the service's maximum)
INSTRUCTIONS = (
    "Approve the release of the newest verified image to production: it passed staging; the run's "
    "summary shows its digest, revision, model and what production runs now."
)
DESCRIPTIONS = {
    ENVIRONMENT: "Releases wait here for approval",
    STAGING: "Every release is deployed and smoke-tested here first",
}

SCOPE_PROJECT = "the PAT scope 'Project and Team (Read)'"
SCOPE_IDENTITY = "the PAT scope 'Identity (Read)'"
SCOPE_CODE = "the PAT scope 'Code (Read)'"
SCOPE_ENVIRONMENT = (
    "the PAT scope 'Environment (Read & manage)' and the Creator role on Pipelines > Environments"
)
SCOPE_CHECKS = (
    "the PAT scope 'Environment (Read & manage)' and the Administrator role on the environment"
)
SCOPE_ENDPOINT_CHECKS = (
    "the PAT scope 'Service Connections (Read, query & manage)' and the Administrator role on "
    "the service connection"
)
SCOPE_LIBRARY = (
    "the PAT scope 'Variable Groups (Read, create & manage)' and the Creator role on "
    "Pipelines > Library"
)
SCOPE_PIPELINES = "the PAT scope 'Build (Read & execute)' and the permission 'Edit build pipeline'"
SCOPE_ENDPOINTS = "the PAT scope 'Service Connections (Read, query & manage)'"
SCOPE_AUTHORIZE = "the Administrator role on that resource"
SCOPE_POLICY = (
    "the PAT scope 'Code (Read & write)' and the permission 'Edit policies' on the repository"
)
MAIN = "refs/heads/main"


@dataclass(frozen=True)
class AzureDevOpsSetup:
    org_url: str
    project: str
    approvers: Sequence[str]  # e-mail addresses or account names
    variables: Mapping[str, str] = field(default_factory=dict)
    service_connection: str | None = None
    deploy_service_connection: str | None = None  # the release's cluster identity, if its own
    repository: str | None = None  # Azure Repos repository; default: the project's name
    environment: str = ENVIRONMENT
    staging: str = STAGING
    variable_group: str = VARIABLE_GROUP
    pipelines: Mapping[str, str] = field(default_factory=lambda: dict(PIPELINES))  # name -> YAML

    def __post_init__(self) -> None:
        for name, path in self.pipelines.items():
            check_yaml_path(YAML_FLAGS[name], path)
        if len(set(self.pipelines.values())) < len(self.pipelines):
            raise ConfigError("--ci-yaml and --release-yaml name the same file: give each its own")
        if not self.org_url.startswith("https://"):
            raise ConfigError(f"--org {self.org_url!r}: give https://dev.azure.com/ORG")
        if not self.project.strip():
            raise ConfigError("--project is empty: give the Azure DevOps project's name")
        if not self.approvers:
            raise ConfigError("--approvers is empty: give at least one user")


def check_yaml_path(flag: str, path: str) -> None:
    """A pipeline's YAML as the service takes it: a file's path from the repository's root."""
    parts = PurePosixPath(path).parts
    if (
        not path.strip()
        or path.startswith("/")
        or "\\" in path
        or ".." in parts
        or PurePosixPath(path).suffix not in (".yml", ".yaml")
    ):
        raise ConfigError(
            f"{flag} {path!r}: give the pipeline's YAML file by its path from the repository's "
            "root, e.g. azure-pipelines/ci.yml"
        )


def setup_azure_devops(request: AzureDevOpsSetup, connection) -> SetupResult:
    """Bring environments, checks, variable group, pipelines and their permits to the requested
    state; return created/updated/unchanged for each."""
    clients = connection.clients_v7_1
    project_name = request.project
    with azure_devops_errors(
        f"read project {project_name}",
        permission=SCOPE_PROJECT,
        fix_not_found="check --org and --project",
    ):
        project = clients.get_core_client().get_project(project_name)
    approvers = [
        resolve_approver(clients.get_identity_client(), name) for name in request.approvers
    ]

    # Read everything first: a wrong name or a conflict stops the step before any write.
    task_agent = clients.get_task_agent_client()
    # Production first, as on GitHub: the gate before anything else.
    names = (request.environment, request.staging)
    found = {name: find_environment(task_agent, project_name, name) for name in names}
    group = find_variable_group(task_agent, project_name, request.variable_group)
    if group is None and not request.variables:
        raise ConfigError(
            f"variable group {request.variable_group} does not exist yet: pass --var NAME=VALUE "
            "for at least one setting"
        )
    repository = find_repository(clients.get_git_client(), project_name, request)
    pipelines_client = clients.get_pipelines_client()
    pipelines = find_pipelines(pipelines_client, project_name, repository, request.pipelines)
    endpoint_client = clients.get_service_endpoint_client()
    endpoint, deploy_endpoint = (
        find_service_connection(endpoint_client, project_name, name) if name else None
        for name in (request.service_connection, request.deploy_service_connection)
    )
    checks_client = clients.get_pipelines_checks_client()

    outputs: dict[str, object] = {"environments": {}}
    environments = {}
    for name in names:
        environments[name], outputs["environments"][name] = ensure_environment(
            task_agent, project_name, name, found[name]
        )
    production, staging = environments[request.environment], environments[request.staging]
    # Each environment takes one release at a time; production's approval is the gate. Only a
    # run of main may use an environment or a connection: a pull request's or another branch's
    # YAML could otherwise push and sign, or deploy in a plain job that skips the approval.
    on_production, on_staging = (_resource("environment", e) for e in (production, staging))
    connections = [_resource("endpoint", e) for e in (endpoint, deploy_endpoint) if e is not None]
    checks = [
        (on_production, approval_body(on_production, approvers), is_plain_approval, approval_state),
        (on_production, exclusive_lock_body(on_production), is_exclusive_lock, no_settings),
        (on_staging, exclusive_lock_body(on_staging), is_exclusive_lock, no_settings),
        *(
            (resource, branch_control_body(resource), is_branch_control, allowed_branches)
            for resource in (on_production, on_staging, *connections)
        ),
    ]
    outputs["checks"] = {
        check_key(resource, body): ensure_check(
            checks_client, project_name, resource, body, ours, state
        )
        for resource, body, ours, state in checks
    }
    group, outputs["variable_group"], outputs["variables"] = ensure_variable_group(
        task_agent, project, request.variable_group, group, request.variables
    )
    outputs["pipelines"] = {}
    pipeline_ids: dict[str, int] = {}
    for name, path in request.pipelines.items():
        pipeline_ids[name], outputs["pipelines"][name] = ensure_pipeline(
            pipelines_client, project_name, name, path, repository, pipelines.get(name)
        )
    permissions = clients.get_pipeline_permissions_client()
    resources = [
        *(
            ("environment", str(environment.id), name, DEPLOYING_PIPELINES)
            for name, environment in environments.items()
        ),
        ("variablegroup", str(group.id), request.variable_group, tuple(PIPELINES)),
    ]
    if endpoint is not None:
        resources.append(("endpoint", str(endpoint.id), endpoint.name, tuple(PIPELINES)))
    # the cluster's identity: for the release pipeline only (unless it is the CI's as well)
    if deploy_endpoint is not None and deploy_endpoint.name != request.service_connection:
        resources.append(
            ("endpoint", str(deploy_endpoint.id), deploy_endpoint.name, DEPLOYING_PIPELINES)
        )
    outputs["permits"] = {
        f"{kind} {name}": authorize(
            permissions, project_name, kind, resource_id, [pipeline_ids[p] for p in users]
        )
        for kind, resource_id, name, users in resources
    }
    # YAML `pr:` triggers do nothing for Azure Repos: a branch policy runs CI on pull requests.
    outputs["build_validation"] = ensure_build_validation(
        clients.get_policy_client(), project_name, repository, pipeline_ids["aiship-ci"]
    )
    missing = {
        name
        for name, value in (group.variables or {}).items()
        if name in AZURE_VARIABLES and not (value.is_secret or value.value)
    }
    result = report(outputs, missing)
    log.info("%s (the identity of the release's deployServiceConnection)", DEPLOY_ROLES)
    return result


def build_validation_settings(repository, pipeline_id: int) -> dict:
    return {
        "buildDefinitionId": pipeline_id,
        "displayName": "aiship CI",
        "queueOnSourceUpdateOnly": False,
        "manualQueueOnly": False,
        "validDuration": BUILD_VALIDITY,
        "scope": [{"repositoryId": str(repository.id), "refName": MAIN, "matchKind": "exact"}],
    }


def comparable(settings: Mapping) -> dict:
    """Policy settings as compared: the service answers `matchKind` in its own case ("Exact" for
    the "exact" sent), so the case of an enum is no difference."""
    scope = [
        {**part, "matchKind": str(part.get("matchKind", "")).lower()}
        for part in settings.get("scope") or []
    ]
    return {**settings, "scope": scope}


def ensure_build_validation(policy_client, project: str, repository, pipeline_id: int) -> str:
    """A blocking Build policy on main of the repository that runs the CI pipeline."""
    from azure.devops.v7_1.policy.models import PolicyConfiguration, PolicyTypeRef

    wanted = build_validation_settings(repository, pipeline_id)
    configuration = PolicyConfiguration(
        is_blocking=True,
        is_enabled=True,
        settings=wanted,
        type=PolicyTypeRef(id=BUILD_POLICY_TYPE),
    )
    what = f"manage the build validation of {MAIN} in {repository.name}"
    with azure_devops_errors(what, permission=SCOPE_POLICY):
        found = policy_client.get_policy_configurations(project, policy_type=BUILD_POLICY_TYPE)
        ours = [
            c
            for c in found or []
            if (c.settings or {}).get("buildDefinitionId") == pipeline_id
            and comparable(c.settings or {})["scope"] == comparable(wanted)["scope"]
        ]
        if not ours:
            policy_client.create_policy_configuration(configuration, project)
            return CREATED
        current = ours[0]
        if (
            current.is_blocking
            and current.is_enabled
            and comparable(current.settings or {}) == comparable(wanted)
        ):
            return UNCHANGED
        policy_client.update_policy_configuration(configuration, project, current.id)
        return UPDATED


def resolve_approver(identity_client, name: str) -> dict:
    """An e-mail address or account name → the identity the Approval check names."""
    with azure_devops_errors(f"look up approver {name}", permission=SCOPE_IDENTITY):
        found = identity_client.read_identities(
            search_filter="General", filter_value=name, query_membership="None"
        )
    if not found:
        raise ConfigError(f"approver {name} not found in the organization: check --approvers")
    if len(found) > 1:
        raise ConfigError(f"approver {name} matches {len(found)} identities: give the e-mail")
    return {"id": found[0].id, "displayName": found[0].provider_display_name or name}


def find_environment(task_agent, project: str, name: str):
    with azure_devops_errors(f"read environment {name}", permission=SCOPE_ENVIRONMENT):
        found = task_agent.get_environments(project, name=name)
    return next((e for e in found or [] if e.name == name), None)


def ensure_environment(task_agent, project: str, name: str, current) -> tuple[Any, str]:
    if current is not None:
        return current, UNCHANGED
    from azure.devops.v7_1.task_agent.models import EnvironmentCreateParameter

    with azure_devops_errors(f"create environment {name}", permission=SCOPE_ENVIRONMENT):
        created = task_agent.add_environment(
            EnvironmentCreateParameter(name=name, description=DESCRIPTIONS.get(name, "")),
            project,
        )
    return created, CREATED


def approval_body(resource: dict, approvers: list[dict]) -> dict:
    return {
        "type": APPROVAL_TYPE,
        "resource": resource,
        "settings": {
            "approvers": approvers,
            "executionOrder": "anyOrder",
            "minRequiredApprovers": 1,  # any one of them, as GitHub's required reviewers
            "instructions": INSTRUCTIONS,
            "blockedApprovers": [],
            "requesterCannotBeApprover": True,  # whoever queued the run cannot approve it
            "definitionRef": {**APPROVAL_DEFINITION, "version": "0.0.1"},
        },
        "timeout": APPROVAL_TIMEOUT,
    }


def exclusive_lock_body(resource: dict) -> dict:
    """One release at a time; with `lockBehavior: runLatest` the newest queued run goes next."""
    return {
        "type": EXCLUSIVE_LOCK_TYPE,
        "resource": resource,
        "settings": {},
        "timeout": APPROVAL_TIMEOUT,
    }


def branch_control_body(resource: dict) -> dict:
    """Only runs of main may use the resource. The service documents no schema for a Task Check's
    settings; this is the shape of the Terraform azuredevops provider's branch control check
    (microsoft/terraform-provider-azuredevops, azuredevops/internal/service/serviceendpoint/
    resource_serviceendpoint_check_branch_control.go): inputs are strings, and with no retry
    interval a run from another branch fails at once instead of waiting out the timeout."""
    return {
        "type": TASK_CHECK_TYPE,
        "resource": resource,
        "settings": {
            "displayName": "Only main",
            "definitionRef": BRANCH_CONTROL_DEFINITION,
            "inputs": {
                "allowedBranches": MAIN,
                "ensureProtectionOfBranch": "false",  # main's policies are the repository's own
                "allowUnknownStatusBranch": "false",
            },
            "retryInterval": 0,
        },
        "timeout": BRANCH_CONTROL_TIMEOUT,
    }


def _resource(kind: str, found) -> dict:
    """What a check is on: an environment or a service connection ("endpoint")."""
    return {"type": kind, "id": str(found.id), "name": found.name}


def check_label(body: Mapping) -> str:
    """Approval, ExclusiveLock or BranchControl (a Task Check that is one)."""
    return "BranchControl" if is_branch_control(body) else body["type"]["name"]


def check_key(resource: dict, body: dict) -> str:
    """How a check shows in the outputs: `production Approval`, `endpoint NAME BranchControl`."""
    where = (
        resource["name"] if resource["type"] == "environment" else f"endpoint {resource['name']}"
    )
    return f"{where} {check_label(body)}"


def is_plain_approval(check: Mapping) -> bool:
    if str(check.get("type", {}).get("id", "")).lower() != APPROVAL_TYPE["id"]:
        return False
    definition = (check.get("settings") or {}).get("definitionRef") or {}
    return not definition or str(definition.get("id", "")).lower() == APPROVAL_DEFINITION["id"]


def is_branch_control(check: Mapping) -> bool:
    if str(check.get("type", {}).get("id", "")).lower() != TASK_CHECK_TYPE["id"]:
        return False
    definition = (check.get("settings") or {}).get("definitionRef") or {}
    return str(definition.get("id", "")).lower() == BRANCH_CONTROL_DEFINITION["id"]


def allowed_branches(check: Mapping) -> tuple:
    """What of a branch control we own: the branches, and how strictly they are judged."""
    inputs = (check.get("settings") or {}).get("inputs") or {}
    branches = sorted(b.strip() for b in str(inputs.get("allowedBranches", "")).split(","))
    strict = [
        str(inputs.get(k, "")).lower()
        for k in ("ensureProtectionOfBranch", "allowUnknownStatusBranch")
    ]
    return (branches, *strict, check.get("timeout"))


def is_exclusive_lock(check: Mapping) -> bool:
    return str(check.get("type", {}).get("id", "")).lower() == EXCLUSIVE_LOCK_TYPE["id"]


def approval_state(check: Mapping) -> tuple:
    """What of an Approval check we own, comparable whatever extra fields the service adds."""
    settings = check.get("settings") or {}
    return (
        sorted(a["id"] for a in settings.get("approvers", [])),
        settings.get("executionOrder"),
        settings.get("minRequiredApprovers"),
        settings.get("instructions"),
        settings.get("requesterCannotBeApprover"),
        check.get("timeout"),
    )


def no_settings(check: Mapping) -> tuple:
    """An Exclusive Lock has nothing of ours to compare: being there is all."""
    return ()


def ensure_check(
    checks_client, project: str, resource: dict, wanted: dict, ours, state=no_settings
) -> str:
    """The one check on the resource that `ours` recognises, as WANTED (compared by `state`)."""
    kind, name = resource["type"], resource["name"]
    what = f"manage the {check_label(wanted)} check on {kind} {name}"
    permission = SCOPE_CHECKS if kind == "environment" else SCOPE_ENDPOINT_CHECKS
    with azure_devops_errors(what, permission=permission):
        found = send_json(
            checks_client,
            "GET",
            CHECK_CONFIGURATIONS,
            {"project": project},
            query={
                "resourceType": kind,
                "resourceId": resource["id"],
                "$expand": "settings",
            },
        )
        matching = [c for c in found.get("value", []) if ours(c)]
        if not matching:
            send_json(checks_client, "POST", CHECK_CONFIGURATIONS, {"project": project}, wanted)
            return CREATED
        current = matching[0]
        if state(current) == state(wanted):
            return UNCHANGED
        send_json(
            checks_client,
            "PATCH",
            CHECK_CONFIGURATIONS,
            {"project": project, "id": current["id"]},
            {**wanted, "id": current["id"]},
        )
        return UPDATED


def find_variable_group(task_agent, project: str, name: str):
    with azure_devops_errors(f"read variable group {name}", permission=SCOPE_LIBRARY):
        found = task_agent.get_variable_groups(project, group_name=name)
    return next((g for g in found or [] if g.name == name), None)


def ensure_variable_group(
    task_agent, project, name: str, current, wanted: Mapping[str, str]
) -> tuple[Any, str, dict[str, str]]:
    """Create the group, or set the wanted variables in it, keeping every other one as it is; a
    setting the pipelines read that is in neither is written empty: Azure leaves an undefined
    `$(NAME)` in the script as it is, and the step would read that text as the setting.
    Returns the group as it is now, its state, and each written variable's state."""
    from azure.devops.v7_1.task_agent.models import (
        ProjectReference,
        VariableGroupParameters,
        VariableGroupProjectReference,
        VariableValue,
    )

    variables = dict(current.variables or {}) if current is not None else {}
    plain = {k: v.value for k, v in variables.items() if not v.is_secret}
    wanted = {**{k: "" for k in AZURE_VARIABLES if k not in variables}, **wanted}
    states = plan_variables(plain, wanted)
    if current is not None and all(state == UNCHANGED for state in states.values()):
        return current, UNCHANGED, states
    # Secret values come back empty; sent back unchanged (is_secret, no value) they are kept.
    variables.update({k: VariableValue(is_secret=False, value=v) for k, v in wanted.items()})
    description = "aiship: non-secret settings the pipelines read (python -m aiship setup)"
    parameters = VariableGroupParameters(
        name=name,
        description=description,
        type="Vsts",
        variables=variables,
        variable_group_project_references=[
            VariableGroupProjectReference(
                name=name,
                description=description,
                project_reference=ProjectReference(id=project.id, name=project.name),
            )
        ],
    )
    if current is None:
        with azure_devops_errors(f"create variable group {name}", permission=SCOPE_LIBRARY):
            return task_agent.add_variable_group(parameters), CREATED, states
    with azure_devops_errors(f"update variable group {name}", permission=SCOPE_LIBRARY):
        return task_agent.update_variable_group(parameters, current.id), UPDATED, states


def find_repository(git_client, project: str, request: AzureDevOpsSetup):
    name = request.repository or project
    with azure_devops_errors(
        f"read repository {name}",
        permission=SCOPE_CODE,
        fix_not_found="pass the Azure Repos repository with --repository",
    ):
        return git_client.get_repository(name, project=project)


def find_pipelines(
    pipelines_client, project: str, repository, paths: Mapping[str, str]
) -> dict[str, dict]:
    """Our pipelines that exist, with their YAML path and repository; a stranger stops us."""
    with azure_devops_errors("list pipelines", permission=SCOPE_PIPELINES):
        listed = pipelines_client.list_pipelines(project, top=1000) or []
        found = {
            p.name: send_json(
                pipelines_client, "GET", PIPELINES_API, {"project": project, "pipelineId": p.id}
            )
            for p in listed
            if p.name in PIPELINES
        }
    for name, pipeline in found.items():
        configuration = pipeline.get("configuration") or {}
        runs = (configuration.get("path"), (configuration.get("repository") or {}).get("id"))
        if runs != (paths[name], repository.id):
            raise Conflict(
                f"pipeline {name} exists but runs {runs[0]} from another place than "
                f"{paths[name]} in {repository.name}: rename or delete it, then rerun"
            )
    return found


def ensure_pipeline(
    pipelines_client, project: str, name: str, path: str, repository, current
) -> tuple[int, str]:
    if current is not None:
        return current["id"], UNCHANGED
    body = {
        "name": name,
        "folder": "\\",
        "configuration": {
            "type": "yaml",
            "path": path,
            "repository": {"id": repository.id, "name": repository.name, "type": "azureReposGit"},
        },
    }
    with azure_devops_errors(f"create pipeline {name}", permission=SCOPE_PIPELINES):
        created = send_json(pipelines_client, "POST", PIPELINES_API, {"project": project}, body)
    return created["id"], CREATED


def find_service_connection(endpoint_client, project: str, name: str):
    with azure_devops_errors(f"read service connection {name}", permission=SCOPE_ENDPOINTS):
        found = endpoint_client.get_service_endpoints_by_names(project, [name])
    endpoint = next((e for e in found or [] if e.name == name), None)
    if endpoint is None:
        raise NotFound(
            f"service connection {name} not found in project {project}: create it (Azure "
            "Resource Manager, workload identity federation), then rerun"
        )
    return endpoint


def authorize(permissions_client, project: str, kind: str, resource_id: str, ids: list[int]):
    """Permit exactly these pipelines to use the resource, so their first run does not stall."""
    from azure.devops.v7_1.pipeline_permissions.models import (
        PipelinePermission,
        Resource,
        ResourcePipelinePermissions,
    )

    what = f"permit the pipelines to use {kind} {resource_id}"
    with azure_devops_errors(what, permission=SCOPE_AUTHORIZE):
        current = permissions_client.get_pipeline_permissions_for_resource(
            project, kind, resource_id
        )
        if current is not None and current.all_pipelines and current.all_pipelines.authorized:
            return UNCHANGED
        permitted = {p.id for p in (current.pipelines if current else None) or [] if p.authorized}
        missing = [i for i in ids if i not in permitted]
        if not missing:
            return UNCHANGED
        permissions_client.update_pipeline_permisions_for_resource(
            ResourcePipelinePermissions(
                pipelines=[PipelinePermission(authorized=True, id=i) for i in missing],
                resource=Resource(id=resource_id, type=kind),
            ),
            project,
            kind,
            resource_id,
        )
    return CREATED if not permitted else UPDATED


@dataclass(frozen=True)
class AzureDevOpsPlan:
    """The setup wanted, and the variable holding the token (not the token)."""

    request: AzureDevOpsSetup
    token_variable: str

    def describe(self) -> str:
        request = self.request
        return (
            f"set up environments {request.staging} and {request.environment} (approvers "
            f"{', '.join(request.approvers)}), "
            f"variable group {request.variable_group} and the pipelines of {request.project} in "
            f"{request.org_url} with {self.token_variable}"
        )


def plan(args: argparse.Namespace) -> AzureDevOpsPlan:
    request = AzureDevOpsSetup(
        org_url=args.org,
        project=args.project,
        approvers=parse_names(args.approvers, "--approvers"),
        variables=parse_variables(args.var, AZURE_VARIABLES),
        service_connection=args.service_connection,
        deploy_service_connection=args.deploy_service_connection,
        repository=args.repository,
        pipelines={"aiship-ci": args.ci_yaml, "aiship-release": args.release_yaml},
    )
    return AzureDevOpsPlan(request, token_variable(TOKEN_VARIABLES))


def run(plan: AzureDevOpsPlan) -> SetupResult:
    variable, token = token_from_env((plan.token_variable,))
    return setup_azure_devops(plan.request, connect(plan.request.org_url, variable, token))


def flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="organization URL, https://dev.azure.com/ORG")
    parser.add_argument("--project", required=True, help="Azure DevOps project")
    parser.add_argument(
        "--approvers", required=True, help="users who approve releases (e-mails), by commas"
    )
    parser.add_argument(
        "--service-connection",
        default=SERVICE_CONNECTION,
        help=f"Azure service connection the pipelines may use (default: {SERVICE_CONNECTION})",
    )
    parser.add_argument(
        "--deploy-service-connection",
        default=DEPLOY_SERVICE_CONNECTION,
        help="the service connection for the cluster, which only the release may use (default: "
        f"{DEPLOY_SERVICE_CONNECTION}, the release's default)",
    )
    parser.add_argument(
        "--repository", help="Azure Repos repository holding the YAML (default: the project's)"
    )
    for name, flag in YAML_FLAGS.items():
        parser.add_argument(
            flag,
            default=PIPELINES[name],
            metavar="PATH",
            help=f"the YAML of pipeline {name}, from the repository's root (default: "
            f"{PIPELINES[name]}; this repository's: .{PIPELINES[name]})",
        )
    parser.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a variable group entry"
    )
