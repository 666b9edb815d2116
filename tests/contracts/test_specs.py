"""The contract validator against the vendored descriptions: their own examples pass, and the
mistakes a fake could make are caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate as validate_description

from tests.contracts import validate
from tests.contracts.make_subsets import SUBSETS
from tests.contracts.validate import check, examples, operation, schema_check

SPECS = Path(__file__).resolve().parent / "specs"
SUB = "00000000-0000-0000-0000-000000000000"
ACR = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries"
AKS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters"
REPO = "/repos/octo/app"
DEVOPS = "/fabrikam/demo/_apis"

# GitHub's own examples that its schemas reject (the description's, not ours): the team-full
# example has no "type", the full-repository example no "language", both required.
KNOWN_BAD_EXAMPLES = {
    ("github", "teams/get-by-name", "default"): "example lacks the required 'type'",
    ("github", "repos/get", "default-response"): "example lacks the required 'language'",
    ("azure-devops", "Repositories_Get Repository", "Get a repository by repositoryId"): (
        "example's path has no {project}, which the operation's path requires"
    ),
    ("azure-devops", "Repositories_Get Repository", "Get a repository by remote URL"): (
        "example is another route (_git/.../vsts/info), not this operation's"
    ),
}


def _all_examples():
    for service in ("containerregistry", "containerservice", "acr", "github", "azure-devops"):
        for operation_id in validate.operations(service):
            for example in examples(service, operation_id):
                key = (service, operation_id, example["name"])
                marks = []
                if key in KNOWN_BAD_EXAMPLES:
                    marks = [pytest.mark.xfail(reason=KNOWN_BAD_EXAMPLES[key], strict=True)]
                yield pytest.param(service, example, id="-".join(map(str, key)), marks=marks)


def _descriptions():
    return sorted(p for p in SPECS.rglob("*.json") if "examples" not in p.parent.as_posix().lower())


@pytest.mark.parametrize("path", _descriptions(), ids=lambda p: p.relative_to(SPECS).as_posix())
def test_each_subset_is_a_valid_self_contained_description(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    validate_description(document)
    refs = {
        value
        for value in _walk(document)
        if isinstance(value, str) and value.startswith(("./", "../"))
    }
    for ref in refs:  # the x-ms-examples files are vendored beside it
        assert (path.parent / ref).is_file(), ref


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize(("service", "example"), list(_all_examples()))
def test_the_descriptions_own_examples_pass(service: str, example: dict) -> None:
    check(
        service,
        example["method"],
        example["url"],
        example["status"],
        example["request_body"],
        example["response_body"],
        example["query"],
    )


def test_every_operation_asked_for_is_there() -> None:
    """Each vendored subset holds the operations make_subsets.py was asked to keep, and every
    subset is one that validate.py reads."""
    read = {path for paths in validate.SERVICES.values() for path in paths}
    for subset in SUBSETS:
        assert subset.out in read, subset.out
        description = json.loads((SPECS / subset.out).read_text(encoding="utf-8"))
        kept = {
            operation["operationId"]
            for section in ("paths", "x-ms-paths")
            for item in description.get(section, {}).values()
            for operation in item.values()
            if isinstance(operation, dict) and "operationId" in operation
        }
        assert set(subset.operations) <= kept, subset.out


# --- what a fake gets wrong --------------------------------------------------------------


def _reason(call) -> str:
    with pytest.raises(AssertionError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize(
    ("service", "method", "url"),
    [
        ("containerregistry", "GET", f"{ACR}/myregistry/replications"),
        ("containerservice", "POST", f"{AKS}/aks1/listClusterMonitoringUserCredential"),
        ("github", "GET", f"{REPO}/environments/prod/secrets"),
        ("azure-devops", "GET", f"{DEVOPS}/distributedtask/queues"),
        ("acr", "POST", "/oauth2/authorize"),
    ],
)
def test_an_unknown_path_is_rejected(service: str, method: str, url: str) -> None:
    assert "no operation has the path" in _reason(
        lambda: check(service, method, url, 200, None, {}, {"api-version": "2025-11-01"})
    )


def test_an_unknown_method_on_a_known_path_is_rejected() -> None:
    reason = _reason(
        lambda: check("github", "DELETE", f"{REPO}/actions/variables", 204, None, None)
    )
    assert "is not an operation" in reason


def test_the_api_version_must_be_the_descriptions() -> None:
    body = {"value": []}
    url = f"/subscriptions/{SUB}/providers/Microsoft.ContainerRegistry/registries"
    check("containerregistry", "GET", url, 200, None, body, {"api-version": "2025-11-01"})
    assert "api-version '2023-07-01'" in _reason(
        lambda: check(
            "containerregistry", "GET", url, 200, None, body, {"api-version": "2023-07-01"}
        )
    )
    assert "required query parameter 'api-version'" in _reason(
        lambda: check("containerregistry", "GET", url, 200, None, body)
    )


def test_azure_devops_takes_its_version_with_a_preview_flag_but_no_other() -> None:
    url = "/fabrikam/_apis/projects/demo?api-version=7.1-preview.4"
    project = {"id": "b2c6b2c6-0000-4000-8000-000000000001", "name": "demo", "state": "wellFormed"}
    check("azure-devops", "GET", url, 200, None, project)
    assert "api-version '7.0'" in _reason(
        lambda: check(
            "azure-devops", "GET", url.replace("7.1-preview.4", "7.0"), 200, None, project
        )
    )


def test_a_query_enum_is_held_to_the_description() -> None:
    url = f"{AKS}/aks1/listClusterUserCredential"
    kubeconfigs = {"kubeconfigs": [{"name": "clusterUser", "value": "YXBpVmVyc2lvbjogdjE="}]}
    query = {"api-version": "2026-08-01", "format": "exec"}
    check("containerservice", "POST", url, 200, None, kubeconfigs, query)
    assert "query 'format'" in _reason(
        lambda: check(
            "containerservice", "POST", url, 200, None, kubeconfigs, {**query, "format": "yaml"}
        )
    )


def test_a_path_parameter_is_held_to_its_pattern() -> None:
    query = {"api-version": "2025-11-01"}
    assert "path 'registryName'" in _reason(
        lambda: check("containerregistry", "GET", f"{ACR}/my-registry", 404, None, {}, query)
    )


def test_a_request_body_missing_a_required_field_is_rejected() -> None:
    url = f"{REPO}/actions/variables"
    check("github", "POST", url, 201, {"name": "ACR_NAME", "value": "acr1"}, {})
    assert "'value' is a required property" in _reason(
        lambda: check("github", "POST", url, 201, {"name": "ACR_NAME"}, {})
    )


def test_an_environment_body_is_closed() -> None:
    url = f"{REPO}/environments/production"
    body = {
        "wait_timer": 0,
        "prevent_self_review": True,
        "reviewers": [{"type": "Team", "id": 7}],
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
    }
    response = examples("github", "repos/get-environment")[0]["response_body"]
    check("github", "PUT", url, 200, body, response)
    assert "request body" in _reason(
        lambda: check("github", "PUT", url, 200, {**body, "required_reviewers": 1}, response)
    )


def test_an_acr_form_missing_a_required_field_is_rejected() -> None:
    form = {"grant_type": "access_token", "service": "acr1.azurecr.io", "access_token": "eyJ"}
    check("acr", "POST", "/oauth2/exchange", 200, form, {"refresh_token": "r"})
    assert "form field 'service'" in _reason(
        lambda: check(
            "acr",
            "POST",
            "/oauth2/exchange",
            200,
            {"grant_type": "access_token"},
            {"refresh_token": "r"},
        )
    )
    assert "form 'grant_type'" in _reason(
        lambda: check("acr", "POST", "/oauth2/exchange", 200, {**form, "grant_type": "jwt"}, {})
    )


def test_an_undeclared_status_is_rejected() -> None:
    assert "status 201 is not declared" in _reason(
        lambda: check("github", "GET", REPO, 201, None, {})
    )
    # Azure's `default` answers for errors, not for an undeclared success.
    error = {"error": {"code": "ResourceNotFound", "message": "The Resource was not found."}}
    query = {"api-version": "2025-11-01"}
    check("containerregistry", "GET", f"{ACR}/myregistry", 404, None, error, query)
    assert "status 202 is not declared" in _reason(
        lambda: check("containerregistry", "GET", f"{ACR}/myregistry", 202, None, {}, query)
    )


def test_a_response_body_that_breaks_its_schema_is_rejected() -> None:
    query = {"api-version": "2025-11-01"}
    registry = examples("containerregistry", "Registries_Get")[0]["response_body"]
    broken = {**registry, "sku": {"tier": "Standard"}}
    assert "'name' is a required property" in _reason(
        lambda: check("containerregistry", "GET", f"{ACR}/myRegistry", 200, None, broken, query)
    )
    bad_error = {"error": "denied"}
    assert "response 403 body" in _reason(
        lambda: check("containerregistry", "GET", f"{ACR}/myRegistry", 403, None, bad_error, query)
    )


def test_azure_devops_lists_come_wrapped() -> None:
    url = f"{DEVOPS}/distributedtask/environments?api-version=7.1-preview.1"
    environment = {"id": 1, "name": "production"}
    check("azure-devops", "GET", url, 200, None, {"count": 1, "value": [environment]})
    assert "sent as" in _reason(lambda: check("azure-devops", "GET", url, 200, None, [environment]))


def test_azure_devops_picks_the_variable_group_operation_by_its_query() -> None:
    base = f"{DEVOPS}/distributedtask/variablegroups?api-version=7.1-preview.2"
    assert operation("azure-devops", "GET", base + "&groupName=aiship") == (
        "Variablegroups_Get Variable Groups"
    )
    assert operation("azure-devops", "GET", base + "&groupIds=1,2") == (
        "Variablegroups_Get Variable Groups By Id"
    )


def test_approval_settings_have_their_own_schema() -> None:
    settings = {
        "approvers": [{"id": "3b3db741-9d03-4e32-a7c0-6c3dfc2013c1"}],
        "executionOrder": "anyOrder",
        "minRequiredApprovers": 1,
        "instructions": "Approve the release",
        "requesterCannotBeApprover": True,
    }
    schema_check("azure-devops", "ApprovalConfigSettings", settings)
    assert "executionOrder" in _reason(
        lambda: schema_check(
            "azure-devops", "ApprovalConfigSettings", {**settings, "executionOrder": "any"}
        )
    )


def test_an_azure_ml_asset_holds_its_parents_properties_and_no_others() -> None:
    url = (
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
        "/workspaces/ws1/models/digits/versions/1.0"
    )
    query = {"api-version": "2023-08-01-preview"}
    # modelUri is ModelVersion's own, isArchived AssetBase's, tags ResourceBase's: all closed.
    version = {"properties": {"modelUri": "azureml://x", "isArchived": False, "tags": {"a": "b"}}}
    check("machinelearningservices", "PUT", url, 201, version, {"name": "1.0", **version}, query)
    typo = {"properties": {**version["properties"], "modelURI": "azureml://x"}}
    assert "'modelURI' was unexpected" in _reason(
        lambda: check("machinelearningservices", "PUT", url, 201, typo, version, query)
    )
