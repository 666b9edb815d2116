"""A fake's traffic, held to the service's official description as it happens.

A fake calls `observe(request, response)` for every exchange; the test (or the fixture that made
the fake) asserts `violations == []` at the end. What a description has no word for is named in
EXEMPT with the reason, not silently let through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from werkzeug import Request, Response

from tests.contracts.validate import check

# (service, method, field of the request body) -> why a real client's null there is let through
UNDESCRIBED_NULLS = {
    ("azureml-registry", "PUT", ("properties", "system_metadata")): (
        "azure-ai-ml 1.35.2 writes it, null, into every registry model version it creates; the "
        "2021-10-01-dataplanepreview description has no such field"
    ),
}
# (service, method, path suffix) -> why the description cannot judge it
EXEMPT = {
    ("azure-devops", "OPTIONS", "/_apis"): "location discovery: not in the REST descriptions",
    ("azure-devops", "GET", "/_apis/ResourceAreas"): "resource-area discovery: not described",
}


@dataclass
class Held:
    service: str
    base: str = ""  # the path the service's description is served under (it names paths after it)
    violations: list[str] = field(default_factory=list)
    # Error answers the description does not declare (GitHub's omits most 401/403/5xx it sends):
    # their requests are judged, their bodies cannot be.
    undeclared: list[str] = field(default_factory=list)
    checked: int = 0

    def observe(self, request: Request, response: Response) -> None:
        if any(
            (service, method) == (self.service, request.method) and request.path.endswith(path)
            for service, method, path in EXEMPT
        ):
            return
        self.checked += 1
        path = request.path.removeprefix(self.base)
        # Azure DevOps' descriptions declare no error answers at all: only the request of a
        # refused call can be judged (its error body is the SDK's WrappedException, tested there).
        judged = not (self.service == "azure-devops" and response.status_code >= 400)
        query = {key: request.args.getlist(key) for key in request.args}
        # Azure DevOps takes the api-version in the Accept header too, where its SDK puts it.
        accepted = dict(
            part.strip().split("=", 1)
            for part in request.headers.get("Accept", "").split(";")[1:]
            if "=" in part
        )
        if "api-version" not in query and "api-version" in accepted:
            query["api-version"] = [accepted["api-version"]]
        failure = self._judge(request, path, query, response, judged)
        if failure and judged and response.status_code >= 400 and "is not declared" in failure:
            self.undeclared.append(f"{request.method} {request.path} -> {response.status_code}")
            failure = self._judge(request, path, query, response, judged=False)
        if failure:
            self.violations.append(
                f"{request.method} {request.path} -> {response.status_code}: {failure}"
            )

    def _judge(
        self, request: Request, path: str, query: dict, response: Response, judged: bool
    ) -> str:
        """Why the exchange leaves the description ("" when it does not); with `judged` False,
        only the request is held to it."""
        try:
            check(
                self.service,
                request.method,
                path,
                response.status_code,
                _body(self.service, request),
                _json(response) if judged else None,
                query=query,
                response=judged,
            )
        except AssertionError as exc:
            return str(exc)
        return ""


def _body(service: str, request: Request) -> object | None:
    if request.mimetype == "application/x-www-form-urlencoded":
        return {key: request.form.get(key) for key in request.form}
    body = request.get_json(silent=True) if request.get_data() else None
    for where, method, path in UNDESCRIBED_NULLS:
        if (where, method) != (service, request.method):
            continue
        *parents, field = path
        node = body
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and field in node and node[field] is None:
            del node[field]
    return body


def _json(response: Response) -> object | None:
    data = response.get_data()
    if not data or "json" not in (response.mimetype or ""):
        return None
    return json.loads(data)
