"""Small stateful fakes of GitHub's and Azure DevOps' REST APIs, served over local HTTPS.

Each fake remembers what was created, so a second run really reads what the first one wrote, and
records every request (method, path, query, JSON body) for the tests to compare.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlencode

from werkzeug import Request, Response

from tests.contracts.held import Held
from tests.contracts.validate import examples

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict
    body: object


@dataclass
class FakeApi:
    token_header: str  # the Authorization header every request must carry
    requests: list[Seen] = field(default_factory=list)
    # (method, path regex) -> statuses to answer first, each with headers, before the real answer
    failures: dict[tuple[str, str], list[tuple[int, dict]]] = field(default_factory=dict)
    held: Held | None = None  # every exchange, held to the service's official description

    def __call__(self, request: Request) -> Response:
        response = self.answer(request)
        if self.held is not None:
            self.held.observe(request, response)
        return response

    def answer(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        record = Seen(request.method, request.path, dict(request.args), copy.deepcopy(body))
        self.requests.append(record)
        if request.headers.get("Authorization") != self.token_header:
            return self.unauthorized()
        for (method, pattern), queue in self.failures.items():
            if queue and method == request.method and re.fullmatch(pattern, request.path):
                status, headers = queue.pop(0)
                return Response(json.dumps({"message": "try again"}), status, headers)
        for method, pattern, handler in self.routes():
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                return handler(request, body, *match.groups())
        return self.not_found(f"no route {request.method} {request.path}")

    def writes(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.method in WRITES]

    def routes(self) -> list:
        raise NotImplementedError

    def unauthorized(self) -> Response:
        raise NotImplementedError

    def not_found(self, message: str) -> Response:
        raise NotImplementedError


def answer(value: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(value), status, headers, content_type="application/json")


def described(operation_id: str, **fields: object) -> dict:
    """GitHub's own example answer of an operation (its REST description's), with FIELDS set."""
    return {**copy.deepcopy(examples("github", operation_id)[0]["response_body"]), **fields}


class FakeGitHub(FakeApi):
    """/repos/{repo}, /users, /orgs/{org}/teams, environments and actions variables."""

    PER_PAGE_MAX = 100

    def __init__(self, token: str, repo: str, base_url: str) -> None:
        super().__init__(token_header=f"Bearer {token}", held=Held("github"))
        self.repo, self.base_url = repo, base_url
        self.users = {"alice": 101, "bob": 102}
        self.teams = {("acme", "release-managers"): 201}
        self.environments: dict[str, dict] = {}
        self.variables: dict[str, str] = {}
        self.denied: set[str] = set()  # "administration", "variables": answered 403
        self.no_access: set[int] = set()  # reviewer ids GitHub refuses (422): no repo access
        # Required reviewers and wait timers of a private repository need GitHub Enterprise Cloud
        # (GitHub's docs: "Deployment environments"); on other plans GitHub answers 422.
        self.visibility = "public"
        self.owner_type = "Organization"
        self.enterprise = False

    def routes(self) -> list:
        repo = re.escape(f"/repos/{self.repo}")
        return [
            ("GET", repo, self.get_repo),
            ("GET", r"/users/([^/]+)", self.get_user),
            ("GET", r"/orgs/([^/]+)/teams/([^/]+)", self.get_team),
            ("GET", repo + r"/environments/([^/]+)", self.get_environment),
            ("PUT", repo + r"/environments/([^/]+)", self.put_environment),
            (
                "GET",
                repo + r"/environments/([^/]+)/deployment-branch-policies",
                self.list_branch_policies,
            ),
            (
                "POST",
                repo + r"/environments/([^/]+)/deployment-branch-policies",
                self.add_branch_policy,
            ),
            ("GET", repo + r"/actions/variables", self.list_variables),
            ("POST", repo + r"/actions/variables", self.create_variable),
            ("PATCH", repo + r"/actions/variables/([^/]+)", self.update_variable),
        ]

    def unauthorized(self) -> Response:
        return answer({"message": "Bad credentials", "status": "401"}, 401)

    def not_found(self, message: str = "Not Found") -> Response:
        return answer({"message": "Not Found", "status": "404"}, 404)

    def forbidden(self) -> Response:
        return answer({"message": "Resource not accessible by personal access token"}, 403)

    def get_repo(self, request, body) -> Response:
        # GitHub's example lacks the required `language`, here and in its `source` and `parent`
        # (tests/contracts: KNOWN_BAD_EXAMPLES).
        repo = described(
            "repos/get",
            full_name=self.repo,
            name=self.repo.split("/")[1],
            id=7,
            visibility=self.visibility,
            private=self.visibility != "public",
        )
        repo["owner"] = {**repo["owner"], "type": self.owner_type}
        for part in (repo, repo.get("source"), repo.get("parent")):
            if part is not None:
                part.setdefault("language", None)
        return answer(repo)

    def get_user(self, request, body, login) -> Response:
        if login not in self.users:
            return self.not_found()
        return answer(described("users/get-by-username", login=login, id=self.users[login]))

    def get_team(self, request, body, org, slug) -> Response:
        if (org, slug) not in self.teams:
            return self.not_found()
        # GitHub's example lacks the required `type`, and its organization `archived_at`
        # (tests/contracts: KNOWN_BAD_EXAMPLES).
        team = described(
            "teams/get-by-name", slug=slug, id=self.teams[(org, slug)], type="organization"
        )
        team["organization"].setdefault("archived_at", None)
        return answer(team)

    def get_environment(self, request, body, name) -> Response:
        if name not in self.environments:
            return self.not_found()
        return answer(self.environment_json(name))

    def put_environment(self, request, body, name) -> Response:
        if "administration" in self.denied:
            return self.forbidden()
        gated = body.get("reviewers") or body.get("wait_timer")
        if gated and self.visibility == "private" and not self.enterprise:
            # GitHub's words for it (pulumi/pulumi-github#251), in its basic-error shape.
            return answer(
                {
                    "message": "Fail to create protected rule, please ensure billing plan "
                    "include protected branch gate.",
                    "documentation_url": "https://docs.github.com/rest/deployments/environments",
                    "status": "422",
                },
                422,
            )
        if any(r["id"] in self.no_access for r in body.get("reviewers") or []):
            return answer(
                {
                    "message": "Validation Failed",
                    "errors": [{"message": "Reviewers must have read access to the repository"}],
                    "status": "422",
                },
                422,
            )
        self.environments[name] = {
            "wait_timer": body.get("wait_timer", 0),
            "prevent_self_review": body.get("prevent_self_review", False),
            "reviewers": body.get("reviewers", []),
            "deployment_branch_policy": body.get("deployment_branch_policy"),
            "branch_policies": self.environments.get(name, {}).get("branch_policies", []),
        }
        return answer(self.environment_json(name))

    def list_branch_policies(self, request, body, name) -> Response:
        if name not in self.environments:
            return self.not_found()
        policies = self.environments[name]["branch_policies"]
        return answer(
            described(
                "repos/list-deployment-branch-policies",
                total_count=len(policies),
                branch_policies=policies,
            )
        )

    def add_branch_policy(self, request, body, name) -> Response:
        environment = self.environments.get(name)
        if not environment or not (environment["deployment_branch_policy"] or {}).get(
            "custom_branch_policies"
        ):
            return self.not_found()  # GitHub: custom branch policies are not enabled
        policy = {
            "id": 300 + len(environment["branch_policies"]),
            "node_id": "MDE2OkdhdGVCcmFuY2hQb2xpY3kzNjE0ODg1",
            "name": body["name"],
            "type": body.get("type", "branch"),
        }
        environment["branch_policies"].append(policy)
        return answer(policy)

    def environment_json(self, name: str) -> dict:
        """As GitHub shows it (its example's shape): protection rules, each reviewer expanded."""
        stored = self.environments[name]
        example = described("repos/get-environment")
        kinds = {rule["type"]: rule for rule in example["protection_rules"]}
        rules: list[dict] = []
        if stored["wait_timer"]:
            rules.append({**kinds["wait_timer"], "wait_timer": stored["wait_timer"]})
        if stored["reviewers"]:
            shown = {r["type"]: r["reviewer"] for r in kinds["required_reviewers"]["reviewers"]}
            reviewers = [
                {"type": r["type"], "reviewer": {**shown[r["type"]], "id": r["id"]}}
                for r in stored["reviewers"]
            ]
            rules.append(
                {
                    **kinds["required_reviewers"],
                    "prevent_self_review": stored["prevent_self_review"],
                    "reviewers": reviewers,
                }
            )
        if stored["branch_policies"]:
            rules.append(kinds["branch_policy"])
        return {
            **example,
            "name": name,
            "protection_rules": rules,
            "deployment_branch_policy": stored["deployment_branch_policy"],
        }

    def list_variables(self, request, body) -> Response:
        if "variables" in self.denied:
            return self.forbidden()
        per_page = min(int(request.args.get("per_page", 30)), self.PER_PAGE_MAX)
        page = int(request.args.get("page", 1))
        names = sorted(self.variables)
        chunk = names[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(names):
            query = urlencode({"per_page": per_page, "page": page + 1})
            headers["Link"] = (
                f'<{self.base_url}/repos/{self.repo}/actions/variables?{query}>; rel="next"'
            )
        shape = described("actions/list-repo-variables")["variables"][0]
        variables = [{**shape, "name": n, "value": self.variables[n]} for n in chunk]
        return answer({"total_count": len(names), "variables": variables}, headers=headers)

    def create_variable(self, request, body) -> Response:
        if "variables" in self.denied:
            return self.forbidden()
        if body["name"] in self.variables:
            return answer({"message": "Already exists"}, 409)
        self.variables[body["name"]] = body["value"]
        return answer({}, 201)

    def update_variable(self, request, body, name) -> Response:
        if "variables" in self.denied:
            return self.forbidden()
        if name not in self.variables:
            return self.not_found()
        self.variables[name] = body["value"]
        return Response(status=204)


# The resource locations the SDK discovers with OPTIONS {org}/_apis: id, area, resource, route.
DEVOPS_LOCATIONS = [
    (
        "e81700f7-3be2-46de-8624-2eb35882fcaa",
        "Location",
        "ResourceAreas",
        "_apis/{resource}/{areaId}",
    ),
    ("603fe2ac-9723-48b9-88ad-09305aa6c6e1", "core", "projects", "_apis/{resource}/{*projectId}"),
    ("28010c54-d0c0-4c89-a5b0-1c9e188b9fb7", "IMS", "Identities", "_apis/{resource}/{identityId}"),
    (
        "8572b1fc-2482-47fa-8f74-7e3ed53ee54b",
        "distributedtask",
        "environments",
        "{project}/_apis/{area}/{resource}/{environmentId}",
    ),
    (
        "ef5b7057-ffc3-4c77-bbad-c10b4a4abcc7",
        "distributedtask",
        "variablegroups",
        "_apis/{area}/{resource}/{groupId}",
    ),
    (
        "f5b09dd5-9d54-45a1-8b5a-1c8287d634cc",
        "distributedtask",
        "variablegroups",
        "{project}/_apis/{area}/{resource}/{groupId}",
    ),
    (
        "86c8381e-5aee-4cde-8ae4-25c0c7f5eaea",
        "PipelinesChecks",
        "configurations",
        "{project}/_apis/pipelines/checks/{resource}/{id}",
    ),
    (
        "28e1305e-2afe-47bf-abaf-cbb0e6a91988",
        "pipelines",
        "pipelines",
        "{project}/_apis/{resource}/{pipelineId}",
    ),
    (
        "b5b9a4a4-e6cd-4096-853c-ab7d8b0c4eb2",
        "pipelinePermissions",
        "pipelinePermissions",
        "{project}/_apis/pipelines/{resource}/{resourceType}/{resourceId}",
    ),
    (
        "225f7195-f9c7-4d14-ab28-a83f7ff77e1f",
        "git",
        "repositories",
        "{project}/_apis/{area}/{resource}/{repositoryId}",
    ),
    (
        "e85f1c62-adfc-4b74-b618-11a150fb195e",
        "serviceendpoint",
        "endpoints",
        "{project}/_apis/{area}/{resource}/{endpointId}",
    ),
    (
        "dad91cbe-d183-45f8-9c6e-9c1164472121",
        "policy",
        "configurations",
        "{project}/_apis/{area}/{resource}/{configurationId}",
    ),
]


# The resource areas the SDK's clients look up in {org}/_apis/ResourceAreas (their
# resource_area_identifier), as the hosted service lists them: each with the URL to call it at.
# Identities live on another host there (vssps); the fake plays that with `localhost`.
DEVOPS_AREAS = {
    "79134c72-4a58-4b42-976c-04e7115f32bf": "core",
    "8a3d49b8-91f0-46ef-b33d-dda338c25db3": "IMS",
    "a85b8835-c1a1-4aac-ae97-1c3d0ba72dbd": "distributedtask",
    "4a933897-0488-45af-bd82-6fd3ad33f46a": "PipelinesChecks",
    "a81a0441-de52-4000-aa15-ff0e07bfbbaa": "pipelinePermissions",
    "4e080c62-fa21-4fbc-8fef-2a10a2b38049": "git",
    "1814ab31-2f4f-4a9f-8761-f4d77dc5a5d7": "serviceendpoint",
    "fb13a388-40dd-4a04-b530-013a739c72ef": "policy",
}
OTHER_HOST_AREAS = ("IMS",)


def devops_error(status: int, type_key: str, message: str) -> Response:
    """Azure DevOps' error body (a WrappedException), which the SDK reads the type from."""
    return answer(
        {
            "$id": "1",
            "innerException": None,
            "message": message,
            "typeName": f"Microsoft.TeamFoundation.{type_key}, Microsoft.TeamFoundation",
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        },
        status,
    )


def collection(values: list) -> Response:
    return answer({"count": len(values), "value": values})


class FakeAzureDevOps(FakeApi):
    """One organization with one project and its repository, approvers and service connection."""

    def __init__(self, token_header: str, org: str, project: str, server_url: str) -> None:
        super().__init__(token_header=token_header, held=Held("azure-devops"))
        self.org, self.project = org, project
        self.server_url = server_url  # https://127.0.0.1:PORT
        self.hosts: list[tuple[str, str]] = []  # (host, path) of every request
        self.project_id = "6a7c1e2b-0000-4000-8000-000000000001"
        self.repository = {"id": "9f1d2c3b-0000-4000-8000-000000000002", "name": project}
        self.identities = {
            "alice@example.com": {"id": "a11ce000-0000-4000-8000-000000000003", "name": "Alice"},
            "bob@example.com": {"id": "b0b00000-0000-4000-8000-000000000004", "name": "Bob"},
        }
        self.endpoints = {
            "aiship-azure": "e9d00000-0000-4000-8000-000000000005",
            "aiship-azure-deploy": "e9d00000-0000-4000-8000-000000000006",
        }
        self.environments: list[dict] = []
        self.checks: list[dict] = []
        self.groups: list[dict] = []
        self.pipelines: list[dict] = []
        self.permits: dict[tuple[str, str], dict[int, bool]] = {}
        self.policies: list[dict] = []
        self.denied: set[str] = set()  # "environments", "variablegroups": answered 403

    def routes(self) -> list:
        org, project = re.escape(f"/{self.org}"), re.escape(f"/{self.org}/{self.project}")
        return [
            ("OPTIONS", org + r"/_apis", self.options),
            ("GET", org + r"/_apis/ResourceAreas", self.resource_areas),
            ("GET", org + r"/_apis/projects/([^/]+)", self.get_project),
            ("GET", org + r"/_apis/Identities", self.identities_search),
            ("GET", project + r"/_apis/distributedtask/environments", self.list_environments),
            ("POST", project + r"/_apis/distributedtask/environments", self.add_environment),
            ("GET", project + r"/_apis/pipelines/checks/configurations", self.list_checks),
            ("POST", project + r"/_apis/pipelines/checks/configurations", self.add_check),
            ("PATCH", project + r"/_apis/pipelines/checks/configurations/(\d+)", self.update_check),
            ("GET", project + r"/_apis/distributedtask/variablegroups", self.list_groups),
            ("POST", org + r"/_apis/distributedtask/variablegroups", self.add_group),
            ("PUT", org + r"/_apis/distributedtask/variablegroups/(\d+)", self.update_group),
            ("GET", project + r"/_apis/git/repositories/([^/]+)", self.get_repository),
            ("GET", project + r"/_apis/pipelines", self.list_pipelines),
            ("GET", project + r"/_apis/pipelines/(\d+)", self.get_pipeline),
            ("POST", project + r"/_apis/pipelines", self.add_pipeline),
            ("GET", project + r"/_apis/serviceendpoint/endpoints", self.find_endpoints),
            (
                "GET",
                project + r"/_apis/pipelines/pipelinePermissions/(\w+)/([^/]+)",
                self.get_permits,
            ),
            ("PATCH", project + r"/_apis/pipelines/pipelinePermissions/(\w+)/([^/]+)", self.permit),
            ("GET", project + r"/_apis/policy/configurations", self.list_policies),
            ("POST", project + r"/_apis/policy/configurations", self.add_policy),
            ("PUT", project + r"/_apis/policy/configurations/(\d+)", self.update_policy),
        ]

    def answer(self, request: Request) -> Response:
        self.hosts.append((request.host, request.path))
        return super().answer(request)

    def resource_areas(self, request, body) -> Response:
        other_host = self.server_url.replace("127.0.0.1", "localhost")
        return collection(
            [
                {
                    "id": area_id,
                    "name": name,
                    "locationUrl": (
                        f"{other_host if name in OTHER_HOST_AREAS else self.server_url}/{self.org}/"
                    ),
                }
                for area_id, name in DEVOPS_AREAS.items()
            ]
        )

    def unauthorized(self) -> Response:
        return Response("", 401)

    def not_found(self, message: str) -> Response:
        return devops_error(404, "NotFoundException", message)

    def denied_for(self, area: str, action: str) -> Response | None:
        if area not in self.denied:
            return None
        return devops_error(
            403,
            "AccessDeniedException",
            f"Access Denied: aiship-bot needs the following permission(s) on the resource {area} "
            f"to perform this action: {action}",
        )

    def options(self, request, body) -> Response:
        return collection(
            [
                {
                    "id": location_id,
                    "area": area,
                    "resourceName": resource,
                    "routeTemplate": route,
                    "resourceVersion": 1,
                    "minVersion": 1.0,
                    "maxVersion": 7.1,
                    "releasedVersion": "7.1",
                }
                for location_id, area, resource, route in DEVOPS_LOCATIONS
            ]
        )

    def get_project(self, request, body, name) -> Response:
        if name != self.project:
            return devops_error(
                404,
                "ProjectDoesNotExistWithNameException",
                f"TF200016: The following project does not exist: {name}.",
            )
        return answer({"id": self.project_id, "name": self.project, "state": "wellFormed"})

    def identities_search(self, request, body) -> Response:
        found = self.identities.get(request.args.get("filterValue", ""))
        values = [{"id": found["id"], "providerDisplayName": found["name"]}] if found else []
        return collection(values)

    def list_environments(self, request, body) -> Response:
        name = request.args.get("name")
        return collection([e for e in self.environments if name in (None, e["name"])])

    def add_environment(self, request, body) -> Response:
        if denied := self.denied_for("environments", "Create"):
            return denied
        environment = {"id": len(self.environments) + 1, **body}
        self.environments.append(environment)
        return answer(environment)

    def list_checks(self, request, body) -> Response:
        kind, resource_id = request.args["resourceType"], request.args["resourceId"]
        found = [
            c
            for c in self.checks
            if (c["resource"]["type"], c["resource"]["id"]) == (kind, resource_id)
        ]
        if request.args.get("$expand") != "settings":
            found = [{k: v for k, v in c.items() if k != "settings"} for c in found]
        return collection(found)

    # The checks a Task Check may run: branch control (evaluatebranchProtection, as the Terraform
    # azuredevops provider's branch control check sends it) and the vendored example's business
    # hours (pipelinesChecks/httpExamples/configurations/POST__AddTaskCheckConfiguration.json).
    TASK_CHECKS: ClassVar[dict[str, str]] = {
        "86b05a0c-73e6-4f7d-b3cf-e38f3b39a75b": "evaluatebranchProtection",
        "445fde2f-6c39-441c-807f-8a59ff2e075f": "evaluateBusinessHours",
    }
    TASK_CHECK_TYPE = "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7"

    def refused_check(self, body: dict) -> Response | None:
        """The service's refusal of a check on a resource it does not have, or of a Task Check
        that names no check it knows."""
        resource = body["resource"]
        known = {
            "environment": {str(e["id"]) for e in self.environments},
            "endpoint": set(self.endpoints.values()),
        }
        if resource["id"] not in known.get(resource["type"], set()):
            return devops_error(
                404, "ResourceNotFoundException", f"{resource['type']} {resource['id']} not found"
            )
        definition = (body.get("settings") or {}).get("definitionRef") or {}
        if body["type"]["id"] == self.TASK_CHECK_TYPE and (
            self.TASK_CHECKS.get(str(definition.get("id")).lower()) != definition.get("name")
        ):
            return devops_error(400, "InvalidRequestException", "unknown check definition")
        return None

    def add_check(self, request, body) -> Response:
        if refused := self.refused_check(body):
            return refused
        check = {**body, "id": len(self.checks) + 1, "createdBy": {"id": "someone"}}
        if "approvers" in check["settings"]:  # the service expands each approver
            check["settings"]["approvers"] = [
                {**a, "uniqueName": a.get("displayName", "")}
                for a in check["settings"]["approvers"]
            ]
        self.checks.append(check)
        return answer(check)

    def update_check(self, request, body, check_id) -> Response:
        if refused := self.refused_check(body):
            return refused
        index = next(i for i, c in enumerate(self.checks) if c["id"] == int(check_id))
        self.checks[index] = {**body, "id": int(check_id)}
        return answer(self.checks[index])

    def list_groups(self, request, body) -> Response:
        name = request.args.get("groupName")
        return collection([g for g in self.groups if name in (None, g["name"])])

    def add_group(self, request, body) -> Response:
        if denied := self.denied_for("variablegroups", "Create"):
            return denied
        group = {**body, "id": len(self.groups) + 1}
        self.groups.append(group)
        return answer(group)

    def update_group(self, request, body, group_id) -> Response:
        index = next(i for i, g in enumerate(self.groups) if g["id"] == int(group_id))
        self.groups[index] = {**body, "id": int(group_id)}
        return answer(self.groups[index])

    def get_repository(self, request, body, name) -> Response:
        if name not in (self.repository["name"], self.repository["id"]):
            return devops_error(
                404,
                "GitRepositoryNotFoundException",
                f"TF401019: The Git repository with name or identifier {name} does not exist",
            )
        return answer(self.repository)

    def list_pipelines(self, request, body) -> Response:
        return collection([{k: p[k] for k in ("id", "name", "folder")} for p in self.pipelines])

    def get_pipeline(self, request, body, pipeline_id) -> Response:
        found = [p for p in self.pipelines if p["id"] == int(pipeline_id)]
        return answer(found[0]) if found else self.not_found(f"pipeline {pipeline_id}")

    def add_pipeline(self, request, body) -> Response:
        configuration = body["configuration"]
        pipeline = {
            "id": len(self.pipelines) + 11,
            "name": body["name"],
            "folder": body.get("folder", "\\"),
            "revision": 1,
            "configuration": {
                "type": configuration["type"],
                "path": configuration["path"],
                "repository": {"id": configuration["repository"]["id"], "type": "azureReposGit"},
            },
        }
        self.pipelines.append(pipeline)
        return answer(pipeline)

    def find_endpoints(self, request, body) -> Response:
        names = request.args.get("endpointNames", "").split(",")
        return collection(
            [{"id": self.endpoints[n], "name": n} for n in names if n in self.endpoints]
        )

    def get_permits(self, request, body, kind, resource_id) -> Response:
        permits = self.permits.get((kind, resource_id), {})
        return answer(
            {
                "resource": {"type": kind, "id": resource_id},
                "pipelines": [{"id": i, "authorized": a} for i, a in sorted(permits.items())],
            }
        )

    def permit(self, request, body, kind, resource_id) -> Response:
        permits = self.permits.setdefault((kind, resource_id), {})
        permits.update({p["id"]: p["authorized"] for p in body["pipelines"]})
        return self.get_permits(request, None, kind, resource_id)

    def list_policies(self, request, body) -> Response:
        kind = request.args.get("policyType")
        return collection([p for p in self.policies if kind in (None, p["type"]["id"])])

    def add_policy(self, request, body) -> Response:
        policy = {**as_stored(body), "id": len(self.policies) + 1, "revision": 1}
        self.policies.append(policy)
        return answer(policy)

    def update_policy(self, request, body, policy_id) -> Response:
        index = next(i for i, p in enumerate(self.policies) if p["id"] == int(policy_id))
        self.policies[index] = {**as_stored(body), "id": int(policy_id), "revision": 2}
        return answer(self.policies[index])


# The service takes an enum in any case and answers it in its own (the vendored policy
# examples send "exact" and get "Exact" back): a client comparing what it sent with what it reads
# must not mind.
MATCH_KINDS = {kind.lower(): kind for kind in ("Exact", "Prefix", "DefaultBranch")}


def as_stored(policy: dict) -> dict:
    """A policy configuration as the service keeps and shows it."""
    settings = policy.get("settings") or {}
    scope = [
        {**part, "matchKind": MATCH_KINDS.get(str(part["matchKind"]).lower(), part["matchKind"])}
        if "matchKind" in part
        else part
        for part in settings.get("scope") or []
    ]
    return {**policy, "settings": {**settings, "scope": scope}} if scope else policy
