"""`setup azure-devops` against a local HTTPS fake of the Azure DevOps REST API: the real
azure-devops SDK (and msrest under it) makes every request."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest

from aiship.clients.azure_devops import PAT_VARIABLE, PIPELINE_TOKEN_VARIABLE, connect
from aiship.commands.setup.azure_devops import (
    APPROVAL_DEFINITION,
    APPROVAL_TYPE,
    DEPLOY_SERVICE_CONNECTION,
    EXCLUSIVE_LOCK_TYPE,
    INSTRUCTIONS,
    PIPELINES,
    SERVICE_CONNECTION,
    AzureDevOpsSetup,
    is_branch_control,
    setup_azure_devops,
)
from aiship.commands.setup.common import AZURE_VARIABLES, STEP_ENVIRONMENT
from aiship.support.errors import AuthError, ConfigError, Conflict, NotFound
from tests.clirun import run_steps
from tests.commands.setup.conftest import DEVOPS_PAT, ORG, PROJECT
from tests.commands.setup.fakes import Seen
from tests.pipelines.azure_yaml import pipeline
from tests.repo import REPO_ROOT

README = REPO_ROOT / "README.md"

VARIABLES = {"MODEL_STORE": "azureblob://models", "ACR_NAME": "aishipacr"}
ALICE = {"id": "a11ce000-0000-4000-8000-000000000003", "displayName": "Alice"}
BOB = {"id": "b0b00000-0000-4000-8000-000000000004", "displayName": "Bob"}
ENDPOINT = "e9d00000-0000-4000-8000-000000000005"
GROUP_DESCRIPTION = "aiship: non-secret settings the pipelines read (python -m aiship setup)"


def run_setup(devops, https_server, token_variable=PAT_VARIABLE, token=DEVOPS_PAT, **kw):
    request = AzureDevOpsSetup(
        org_url=https_server.url_for(f"/{ORG}"),
        project=kw.pop("project", PROJECT),
        approvers=kw.pop("approvers", ["alice@example.com"]),
        variables=kw.pop("variables", VARIABLES),
        service_connection=kw.pop("service_connection", "aiship-azure"),
        deploy_service_connection=kw.pop("deploy_service_connection", None),
        **kw,
    )
    return setup_azure_devops(request, connect(request.org_url, token_variable, token)).outputs()


def approval(approvers: list[dict]) -> dict:
    return {
        "type": APPROVAL_TYPE,
        "resource": {"type": "environment", "id": "1", "name": "production"},
        "settings": {
            "approvers": approvers,
            "executionOrder": "anyOrder",
            "minRequiredApprovers": 1,  # any one approver, as on GitHub
            "instructions": INSTRUCTIONS,
            "blockedApprovers": [],
            "requesterCannotBeApprover": True,
            "definitionRef": {**APPROVAL_DEFINITION, "version": "0.0.1"},
        },
        "timeout": 43200,
    }


# Azure Repos ignores the YAML's `pr:`: this policy is what runs CI on every pull request to main.
BUILD_VALIDATION = {
    "isBlocking": True,
    "isEnabled": True,
    "settings": {
        "buildDefinitionId": 11,
        "displayName": "aiship CI",
        "queueOnSourceUpdateOnly": False,
        "manualQueueOnly": False,
        "validDuration": 720,
        "scope": [
            {
                "repositoryId": "9f1d2c3b-0000-4000-8000-000000000002",
                "refName": "refs/heads/main",
                "matchKind": "exact",
            }
        ],
    },
    "type": {"id": "0609b952-1397-4640-95ec-e00a01b2c241"},
}


def exclusive_lock(environment_id: str, name: str) -> dict:
    return {
        "type": EXCLUSIVE_LOCK_TYPE,
        "resource": {"type": "environment", "id": environment_id, "name": name},
        "settings": {},
        "timeout": 43200,
    }


def branch_control(kind: str, resource_id: str, name: str) -> dict:
    """Only runs of main, in the shape the Terraform azuredevops provider sends."""
    return {
        "type": {"id": "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7", "name": "Task Check"},
        "resource": {"type": kind, "id": resource_id, "name": name},
        "settings": {
            "displayName": "Only main",
            "definitionRef": {
                "id": "86b05a0c-73e6-4f7d-b3cf-e38f3b39a75b",
                "name": "evaluatebranchProtection",
                "version": "0.0.1",
            },
            "inputs": {
                "allowedBranches": "refs/heads/main",
                "ensureProtectionOfBranch": "false",
                "allowUnknownStatusBranch": "false",
            },
            "retryInterval": 0,
        },
        "timeout": 1440,
    }


def environment(name: str, description: str) -> Seen:
    return Seen(
        "POST",
        f"/{ORG}/{PROJECT}/_apis/distributedtask/environments",
        {},
        {"description": description, "name": name},
    )


PRODUCTION = environment("production", "Releases wait here for approval")
STAGING = environment("staging", "Every release is deployed and smoke-tested here first")


def group_body(variables: dict) -> dict:
    return {
        "description": GROUP_DESCRIPTION,
        "name": "aiship",
        "type": "Vsts",
        "variableGroupProjectReferences": [
            {
                "description": GROUP_DESCRIPTION,
                "name": "aiship",
                "projectReference": {"id": "6a7c1e2b-0000-4000-8000-000000000001", "name": "shop"},
            }
        ],
        "variables": variables,
    }


def pipeline_body(name: str, path: str) -> dict:
    repository = {
        "id": "9f1d2c3b-0000-4000-8000-000000000002",
        "name": "shop",
        "type": "azureReposGit",
    }
    return {
        "name": name,
        "folder": "\\",
        "configuration": {"type": "yaml", "path": path, "repository": repository},
    }


def permit(kind: str, resource_id: str, ids: list[int]) -> Seen:
    return Seen(
        "PATCH",
        f"/{ORG}/{PROJECT}/_apis/pipelines/pipelinePermissions/{kind}/{resource_id}",
        {},
        {
            "pipelines": [{"authorized": True, "id": i} for i in ids],
            "resource": {"id": resource_id, "type": kind},
        },
    )


def test_first_run_creates_everything(devops, https_server):
    outputs = run_setup(devops, https_server)

    assert outputs == {
        "environments": {"production": "created", "staging": "created"},
        "checks": {
            "production Approval": "created",
            "production ExclusiveLock": "created",
            "staging ExclusiveLock": "created",  # one release at a time in staging too
            "production BranchControl": "created",  # only main deploys
            "staging BranchControl": "created",
            "endpoint aiship-azure BranchControl": "created",  # only main pushes and signs
        },
        "build_validation": "created",
        "variable_group": "created",
        "variables": dict.fromkeys(AZURE_VARIABLES, "created"),  # the unset ones empty
        "pipelines": {"aiship-ci": "created", "aiship-release": "created"},
        "permits": {
            "environment production": "created",
            "environment staging": "created",
            "variablegroup aiship": "created",
            "endpoint aiship-azure": "created",
        },
        "changed": True,
        "unset": [
            "ACR_RESOURCE_GROUP",
            "AKS_CLUSTER",
            "AKS_RESOURCE_GROUP",
            "AZURE_SUBSCRIPTION_ID",
            "IMAGE_REPOSITORY",
            "K8S_NAMESPACE",
            "K8S_STAGING_NAMESPACE",
            "MODEL_NAME",
            "NOTATION_AKV_PLUGIN_CONFIG",
            "NOTATION_AKV_PLUGIN_SHA256",
            "NOTATION_AKV_PLUGIN_URL",
            "SIGNING_IDENTITY",
            "SIGNING_KEY_ID",
        ],
    }
    project = f"/{ORG}/{PROJECT}/_apis"
    plain = {
        name: {"isSecret": False, "value": VARIABLES.get(name, "")} for name in AZURE_VARIABLES
    }
    checks = f"{project}/pipelines/checks/configurations"
    assert devops.writes() == [
        PRODUCTION,
        STAGING,
        Seen("POST", checks, {}, approval([ALICE])),
        Seen("POST", checks, {}, exclusive_lock("1", "production")),
        Seen("POST", checks, {}, exclusive_lock("2", "staging")),
        Seen("POST", checks, {}, branch_control("environment", "1", "production")),
        Seen("POST", checks, {}, branch_control("environment", "2", "staging")),
        Seen("POST", checks, {}, branch_control("endpoint", ENDPOINT, "aiship-azure")),
        Seen("POST", f"/{ORG}/_apis/distributedtask/variablegroups", {}, group_body(plain)),
        Seen(
            "POST",
            f"{project}/pipelines",
            {},
            pipeline_body("aiship-ci", "azure-pipelines/ci.yml"),
        ),
        Seen(
            "POST",
            f"{project}/pipelines",
            {},
            pipeline_body("aiship-release", "azure-pipelines/release.yml"),
        ),
        permit("environment", "1", [12]),  # only the release pipeline deploys
        permit("environment", "2", [12]),
        permit("variablegroup", "1", [11, 12]),
        permit("endpoint", ENDPOINT, [11, 12]),
        Seen("POST", f"{project}/policy/configurations", {}, BUILD_VALIDATION),
    ]
    reads = [r.query for r in devops.requests if r.path == checks and r.method == "GET"]
    assert [(q["resourceType"], q["resourceId"], q["$expand"]) for q in reads] == [
        ("environment", "1", "settings"),
        ("environment", "1", "settings"),
        ("environment", "2", "settings"),
        ("environment", "1", "settings"),
        ("environment", "2", "settings"),
        ("endpoint", ENDPOINT, "settings"),
    ]


def test_second_run_writes_nothing(devops, https_server, caplog):
    run_setup(devops, https_server)
    devops.requests.clear()

    with caplog.at_level("INFO"):
        outputs = run_setup(devops, https_server)

    assert outputs["changed"] is False
    assert set(outputs["environments"].values()) == {"unchanged"}
    assert set(outputs["checks"].values()) == {"unchanged"}
    assert outputs["build_validation"] == outputs["variable_group"] == "unchanged"
    assert set(outputs["variables"].values()) == {"unchanged"}
    assert set(outputs["pipelines"].values()) == {"unchanged"}
    assert set(outputs["permits"].values()) == {"unchanged"}
    assert devops.writes() == []
    assert devops.requests, "the second run read the state again"
    assert "nothing changed" in caplog.text


def test_a_rerun_adds_no_second_build_policy(devops, https_server):
    """The service answers the "exact" it is sent as "Exact" (tests/commands/setup/fakes.py)."""
    run_setup(devops, https_server)
    assert devops.policies[0]["settings"]["scope"][0]["matchKind"] == "Exact"

    assert run_setup(devops, https_server)["build_validation"] == "unchanged"
    assert len(devops.policies) == 1


def test_changes_update_only_what_differs_and_keep_secrets(devops, https_server):
    run_setup(devops, https_server)
    devops.groups[0]["variables"]["REGISTRY_PASSWORD"] = {"isSecret": True, "value": None}
    devops.requests.clear()

    outputs = run_setup(
        devops,
        https_server,
        approvers=["alice@example.com", "bob@example.com"],
        variables={"ACR_NAME": "otheracr", "MODEL_NAME": "digits"},
    )

    assert outputs["checks"]["production Approval"] == "updated"
    assert {k: v for k, v in outputs["checks"].items() if k != "production Approval"} == {
        "production ExclusiveLock": "unchanged",
        "staging ExclusiveLock": "unchanged",
        "production BranchControl": "unchanged",
        "staging BranchControl": "unchanged",
        "endpoint aiship-azure BranchControl": "unchanged",
    }
    assert outputs["variable_group"] == "updated"
    assert outputs["variables"] == {"ACR_NAME": "updated", "MODEL_NAME": "updated"}
    assert set(outputs["environments"].values()) == {"unchanged"}
    assert set(outputs["pipelines"].values()) == {"unchanged"}
    project = f"/{ORG}/{PROJECT}/_apis"
    assert devops.writes() == [
        Seen(
            "PATCH",
            f"{project}/pipelines/checks/configurations/1",
            {},
            {**approval([ALICE, BOB]), "id": 1},
        ),
        Seen(
            "PUT",
            f"/{ORG}/_apis/distributedtask/variablegroups/1",
            {},
            group_body(
                {
                    **{name: {"isSecret": False, "value": ""} for name in AZURE_VARIABLES},
                    "MODEL_STORE": {"isSecret": False, "value": "azureblob://models"},
                    "ACR_NAME": {"isSecret": False, "value": "otheracr"},
                    "REGISTRY_PASSWORD": {"isSecret": True},
                    "MODEL_NAME": {"isSecret": False, "value": "digits"},
                }
            ),
        ),
    ]


def test_the_pipelines_run_the_files_readme_tells_another_project_to_commit():
    committed = re.findall(r"<!-- consumer: (azure-pipelines/\S+) -->", README.read_text())
    assert sorted(PIPELINES.values()) == sorted(committed)


def test_this_repository_registers_its_own_yaml(devops, https_server):
    own = {name: f".{path}" for name, path in PIPELINES.items()}
    assert all((REPO_ROOT / path).is_file() for path in own.values())

    outputs = run_setup(devops, https_server, pipelines=own)

    assert outputs["pipelines"] == {"aiship-ci": "created", "aiship-release": "created"}
    registered = {p["name"]: p["configuration"]["path"] for p in devops.pipelines}
    assert registered == own
    assert run_setup(devops, https_server, pipelines=own)["changed"] is False


@pytest.mark.parametrize(
    "path", ["", "/azure-pipelines/ci.yml", "../ci.yml", "azure-pipelines\\ci.yml", "ci.json"]
)
def test_a_yaml_path_the_service_cannot_take_stops_at_once(path):
    with pytest.raises(ConfigError) as raised:
        AzureDevOpsSetup(
            "https://dev.azure.com/acme", PROJECT, ["a"], pipelines={**PIPELINES, "aiship-ci": path}
        )
    assert str(raised.value) == (
        f"--ci-yaml {path!r}: give the pipeline's YAML file by its path from the repository's "
        "root, e.g. azure-pipelines/ci.yml"
    )


def test_one_file_for_both_pipelines_stops_at_once():
    same = dict.fromkeys(PIPELINES, "azure-pipelines/ci.yml")
    with pytest.raises(ConfigError, match="name the same file"):
        AzureDevOpsSetup("https://dev.azure.com/acme", PROJECT, ["a"], pipelines=same)


def test_a_pipeline_token_signs_in_as_bearer(devops, https_server):
    devops.token_header = "Bearer system-access-token-value"
    outputs = run_setup(devops, https_server, PIPELINE_TOKEN_VARIABLE, "system-access-token-value")
    assert outputs["environments"] == {"production": "created", "staging": "created"}


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            {"approvers": ["carol@example.com"]},
            ConfigError,
            "approver carol@example.com not found in the organization: check --approvers",
        ),
        (
            {"project": "nope"},
            NotFound,
            "read project nope: not found: check --org and --project",
        ),
        (
            {"service_connection": "missing"},
            NotFound,
            "service connection missing not found in project shop: create it",
        ),
    ],
)
def test_a_wrong_name_stops_before_any_write(devops, https_server, change, error, message):
    with pytest.raises(error) as raised:
        run_setup(devops, https_server, **change)
    assert str(raised.value).startswith(message)
    assert devops.writes() == []


def test_a_stranger_pipeline_of_the_same_name_stops_before_any_write(devops, https_server):
    devops.pipelines.append(
        {
            "id": 5,
            "name": "aiship-release",
            "folder": "\\",
            "configuration": {"type": "yaml", "path": "deploy.yml", "repository": {"id": "x"}},
        }
    )
    with pytest.raises(Conflict, match=r"pipeline aiship-release exists but runs deploy\.yml"):
        run_setup(devops, https_server)
    assert devops.writes() == []


def test_a_missing_permission_names_the_scope_and_role(devops, https_server):
    devops.denied = {"variablegroups"}
    with pytest.raises(AuthError) as raised:
        run_setup(devops, https_server)
    assert str(raised.value) == (
        "the token may not create variable group aiship: it needs the PAT scope 'Variable Groups "
        "(Read, create & manage)' and the Creator role on Pipelines > Library"
    )


def test_a_rejected_token_is_named(devops, https_server):
    with pytest.raises(AuthError, match="set a valid, unexpired AZURE_DEVOPS_EXT_PAT"):
        run_setup(devops, https_server, token="wrong")


def test_the_command_line_fails_in_one_line_without_the_token(devops, https_server, tmp_path):
    devops.denied = {"environments"}
    env = {"AZURE_DEVOPS_EXT_PAT": DEVOPS_PAT, "AZURE_DEVOPS_CACHE_DIR": str(tmp_path)}
    args = ["--org", https_server.url_for(f"/{ORG}"), "--project", PROJECT]
    args += ["--approvers", "alice@example.com", "--var", "MODEL_NAME=digits"]

    def cli(*extra: str, **more_env: str) -> subprocess.CompletedProcess:
        command = ["setup", "azure-devops", *args, *extra]
        return run_steps(*command, env=env | more_env, drop=("GITHUB_",), timeout=60)

    failed, verbose = cli(), cli("-v", TF_BUILD="True")

    assert failed.returncode == verbose.returncode == 3
    assert failed.stderr.splitlines() == [
        "error: the token may not create environment production: it needs the PAT scope "
        "'Environment (Read & manage)' and the Creator role on Pipelines > Environments"
    ]
    assert devops.writes() == [PRODUCTION] * 2
    basic = base64.b64encode(f":{DEVOPS_PAT}".encode()).decode()
    # In Azure Pipelines the token is first registered as a secret; nowhere else does it show.
    assert verbose.stdout.splitlines()[0] == f"##vso[task.setsecret]{DEVOPS_PAT}"
    for text in (
        failed.stdout + failed.stderr,
        "\n".join(verbose.stdout.splitlines()[1:]) + verbose.stderr,
    ):
        assert DEVOPS_PAT not in text
        assert basic not in text


def test_pre_and_post_check_approvals_are_left_alone(devops, https_server):
    """They share the Approval type: only the plain approval (by its definitionRef) is ours."""
    for name, definition in (
        ("preCheckApproval", "0f52a19b-c67e-468f-b8eb-0ae83b532c99"),
        ("postCheckApproval", "06441319-13fb-4756-b198-c2da116894a4"),
    ):
        devops.checks.append(
            {
                **approval([BOB]),
                "id": len(devops.checks) + 1,
                "resource": {"type": "environment", "id": "1", "name": "production"},
                "settings": {
                    **approval([BOB])["settings"],
                    "definitionRef": {"id": definition, "name": name},
                },
            }
        )
    devops.environments.append({"id": 1, "name": "production"})

    outputs = run_setup(devops, https_server)

    assert outputs["checks"]["production Approval"] == "created"
    plain = [
        c for c in devops.checks if c["settings"].get("definitionRef", {}).get("name") == "approval"
    ]
    assert len(plain) == 1 and [a["id"] for a in plain[0]["settings"]["approvers"]] == [ALICE["id"]]
    # the two others, untouched, and the approval, the lock and the branch control
    assert sum(c["resource"]["name"] == "production" for c in devops.checks) == 5


def test_a_build_validation_turned_off_by_hand_is_turned_on_again(devops, https_server):
    run_setup(devops, https_server)
    devops.policies[0]["isEnabled"] = False
    devops.requests.clear()

    outputs = run_setup(devops, https_server)

    assert outputs["build_validation"] == "updated"
    assert devops.writes() == [
        Seen("PUT", f"/{ORG}/{PROJECT}/_apis/policy/configurations/1", {}, BUILD_VALIDATION)
    ]
    assert devops.policies[0]["isEnabled"] is True


def test_a_deploy_connection_of_its_own_is_permitted_to_the_release_only(devops, https_server):
    """Least privilege: the CI pipeline may not use the identity that reaches the cluster."""
    outputs = run_setup(devops, https_server, deploy_service_connection="aiship-azure-deploy")

    assert outputs["permits"]["endpoint aiship-azure-deploy"] == "created"
    deploy = devops.endpoints["aiship-azure-deploy"]
    assert devops.permits[("endpoint", deploy)] == {12: True}  # aiship-release, not aiship-ci
    assert devops.permits[("endpoint", devops.endpoints["aiship-azure"])] == {11: True, 12: True}


def test_a_staging_environment_made_by_hand_gets_its_lock_and_permit(devops, https_server, caplog):
    devops.environments.append({"id": 1, "name": "staging"})

    with caplog.at_level("INFO"):
        outputs = run_setup(devops, https_server)

    assert outputs["environments"] == {"production": "created", "staging": "unchanged"}
    assert outputs["checks"]["staging ExclusiveLock"] == "created"
    assert [c["resource"]["name"] for c in devops.checks if is_lock(c)] == ["production", "staging"]
    assert devops.permits[("environment", "1")] == {12: True}  # the release pipeline only
    assert "AcrPush on the registry" in caplog.records[-1].getMessage()


def is_lock(check: dict) -> bool:
    return check["type"]["id"] == EXCLUSIVE_LOCK_TYPE["id"]


def test_the_command_line_refuses_a_bad_yaml_path_before_any_request(devops, https_server):
    args = ["--org", https_server.url_for(f"/{ORG}"), "--project", PROJECT]
    args += ["--approvers", "alice@example.com", "--release-yaml", "../release.yml"]
    env = {PAT_VARIABLE: DEVOPS_PAT}
    done = run_steps("setup", "azure-devops", *args, env=env, drop=("GITHUB_",), timeout=60)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --release-yaml '../release.yml': give the pipeline's YAML file by its path from "
        "the repository's root, e.g. azure-pipelines/ci.yml"
    ]
    assert devops.requests == []


def test_a_branch_widened_by_hand_is_narrowed_to_main_again(devops, https_server):
    run_setup(devops, https_server)
    (check,) = [c for c in devops.checks if c["resource"]["id"] == ENDPOINT]
    check["settings"]["inputs"]["allowedBranches"] = "refs/heads/main, refs/heads/*"
    devops.requests.clear()

    outputs = run_setup(devops, https_server)

    assert outputs["checks"]["endpoint aiship-azure BranchControl"] == "updated"
    assert devops.writes() == [
        Seen(
            "PATCH",
            f"/{ORG}/{PROJECT}/_apis/pipelines/checks/configurations/{check['id']}",
            {},
            {**branch_control("endpoint", ENDPOINT, "aiship-azure"), "id": check["id"]},
        )
    ]


def test_every_environment_and_connection_the_pipelines_use_takes_only_main(devops, https_server):
    """What the pipelines name, compiled with their defaults (as a scheduled or a pull request's
    run uses them), each guarded by a branch control that setup, with its defaults, makes."""
    used: set[tuple[str, str]] = set()
    for name, parameters in (
        ("ci.yml", {}),
        ("release.yml", {}),
        ("release.yml", {"rollback": True}),
    ):
        for stage in pipeline(name, **parameters)["stages"]:
            for job in stage["jobs"]:
                if "environment" in job:
                    used.add(("environment", job["environment"]))
                steps = (
                    job["strategy"]["runOnce"]["deploy"]["steps"]
                    if "deployment" in job
                    else job["steps"]
                )
                used |= {
                    ("endpoint", step["inputs"]["azureSubscription"])
                    for step in steps
                    if "azureSubscription" in step.get("inputs", {})
                }
    assert {kind for kind, _ in used} == {"environment", "endpoint"}

    run_setup(
        devops,
        https_server,
        service_connection=SERVICE_CONNECTION,
        deploy_service_connection=DEPLOY_SERVICE_CONNECTION,
    )

    guarded = {
        (c["resource"]["type"], c["resource"]["name"])
        for c in devops.checks
        if is_branch_control(c) and c["settings"]["inputs"]["allowedBranches"] == "refs/heads/main"
    }
    assert guarded == used


def test_the_group_defines_every_setting_the_pipelines_read(devops, https_server):
    """Azure leaves an undefined `$(NAME)` in a script as it is: every `$(NAME)` of the YAML that
    is neither predefined (theirs are Namespace.Name) nor defined by the YAML itself, and every
    setting a step reads from its environment, is in the group, a setting not given empty."""
    text = "".join(p.read_text() for p in sorted((REPO_ROOT / ".azure-pipelines").rglob("*.yml")))
    defined: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("variables"), dict):
                defined.update(node["variables"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    for name, parameters in (
        ("ci.yml", {}),
        ("release.yml", {}),
        ("release.yml", {"rollback": True}),
    ):
        collect(pipeline(name, **parameters))
    read = set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", text)) - defined | set(STEP_ENVIRONMENT)
    assert {"ACR_RESOURCE_GROUP", "AKS_CLUSTER", "K8S_NAMESPACE"} <= read

    outputs = run_setup(devops, https_server, variables={"MODEL_NAME": "digits"})

    (group,) = devops.groups
    assert read <= set(group["variables"])
    assert {n for n, v in group["variables"].items() if v["value"] == ""} == read - {"MODEL_NAME"}
    assert "MODEL_NAME" not in outputs["unset"] and "ACR_RESOURCE_GROUP" in outputs["unset"]
    assert run_setup(devops, https_server, variables={"MODEL_NAME": "digits"})["changed"] is False
