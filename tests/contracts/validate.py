"""Hold a fake's traffic to the services' official API descriptions (vendored under specs/).

    check("github", "PUT", "/repos/o/r/environments/production", 200, request_body, response_body)

raises AssertionError with a one-line reason when the call is not one the description allows:
an unknown path or method, a missing required query parameter, an api-version the description
does not define, a request body or form that its schema rejects, an undeclared status, or a
response body that the status's schema rejects. `examples(service, operation_id)` gives the
description's own request/response pairs, shaped as `check` takes them, for a fake to serve.

Swagger 2.0 (Azure, Azure DevOps) and OpenAPI 3.0 (GitHub) are read as they are, with the
readings these services' own tooling applies:

- `nullable: true` (OpenAPI) and `x-nullable: true` (Swagger) allow null.
- Swagger descriptions from Microsoft: a property that is not required may be null unless it
  says `x-nullable: false` (the Azure example validator reads them so; their examples rely on it).
- A `default` response stands for any undeclared status of 400 and above, never for a success.
- Azure DevOps: enum values in the query match without regard to case (the service parses
  them so, and its own examples send `queryMembership=None`). A response the description
  declares as an array is sent wrapped as `{"count": n, "value": [...]}` (the description's
  own VssJsonCollectionWrapper, and what its examples show). The api-version is the one the
  parameter's description names ("set to '7.1'"), or that version with a `-preview` or
  `-preview.N` flag, which the service accepts and the azure-devops SDK sends. Paths match
  without regard to case, as the service does. An IdentityDescriptor, described as an object,
  may be its wire form "type;identifier" (the examples, and the SDK's `str`).
- Azure Resource Manager: the api-version is the description's `info.version`; paths match
  without regard to case.
- Swagger from Microsoft: a definition's `allOf` of other definitions is inheritance (AutoRest
  and Azure's validators read it so): the definition holds its parents' properties and required
  names, and `additionalProperties: false` judges that whole set (Azure ML's asset definitions
  close both the parent and the child, which read as separate JSON Schemas reject everything).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).resolve().parent / "specs"

SERVICES: dict[str, tuple[str, ...]] = {
    "containerregistry": ("azure/containerregistry/containerregistry.json",),
    "containerservice": ("azure/containerservice/managedClusters.json",),
    "acr": ("azure/acr/containerregistry.json",),
    "machinelearningservices": (
        "azure/machinelearningservices/2023-08-01-preview/mfe.json",
        "azure/machinelearningservices/2024-10-01-preview/mfe.json",
    ),
    "azureml-registry": (
        "azure/machinelearningservices/registry-discovery/registry-discovery.json",
        "azure/machinelearningservices/2021-10-01-dataplanepreview/mfe.json",
    ),
    "github": ("github/api.github.com.json",),
    "azure-devops": (
        "azure-devops/core/core.json",
        "azure-devops/identities/identities.json",
        "azure-devops/taskAgent/taskAgent.json",
        "azure-devops/pipelinesChecks/pipelinesChecks.json",
        "azure-devops/pipelinePermissions/pipelinePermissions.json",
        "azure-devops/pipelines/pipelines.json",
        "azure-devops/policy/policy.json",
        "azure-devops/build/build.json",
        "azure-devops/git/git.json",
        "azure-devops/serviceEndpoint/serviceEndpoint.json",
    ),
}
SERVICES["arm"] = SERVICES["containerregistry"] + SERVICES["containerservice"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_NOT_SCHEMAS = frozenset({"example", "examples", "x-ms-examples", "default", "enum", "x-ms-enum"})


def _pointer(*tokens: object) -> str:
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _fail(reason: str) -> None:
    raise AssertionError(reason)


# --- reading a description ---------------------------------------------------------------


def _allow_null(schema: dict) -> dict:
    """`schema`, also accepting null."""
    kind = schema.get("type")
    if isinstance(kind, str):
        schema = {**schema, "type": [kind, "null"]}
    elif isinstance(kind, list):
        schema = {**schema, "type": [*kind, "null"] if "null" not in kind else kind}
    else:
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _not_schema(key: str, value) -> bool:
    """Values (examples, defaults, enums) that must be kept as they are; a `default` that is a
    response (it has a description) is walked like any other."""
    if key == "default":
        return not (isinstance(value, dict) and "description" in value)
    return key in _NOT_SCHEMAS


def _inherited(raw: dict) -> dict:
    """`raw` with each definition's parents (its `allOf` of local definitions) merged into it."""
    definitions = raw.get("definitions", {})
    merged: dict[str, dict] = {}

    def merge(name: str) -> dict:
        if name not in merged:
            schema = definitions[name]
            local = [
                p
                for p in schema.get("allOf", [])
                if str(p.get("$ref", "")).startswith("#/definitions/")
            ]
            properties, required = {}, []
            for parent in (merge(p["$ref"].rsplit("/", 1)[1]) for p in local):
                properties.update(parent.get("properties", {}))
                required += parent.get("required", [])
            properties.update(schema.get("properties", {}))
            required += schema.get("required", [])
            flat = {k: v for k, v in schema.items() if k not in ("allOf", "properties", "required")}
            if properties:
                flat["properties"] = properties
            if required:
                flat["required"] = list(dict.fromkeys(required))
            if rest := [p for p in schema.get("allOf", []) if p not in local]:
                flat["allOf"] = rest
            merged[name] = flat
        return merged[name]

    if not definitions:
        return raw
    return {**raw, "definitions": {name: merge(name) for name in definitions}}


def _to_json_schema(node, *, loose_optional: bool):
    """The description's schemas as JSON Schema draft 4 (what Swagger 2.0 and OpenAPI 3.0 use)."""
    if isinstance(node, list):
        return [_to_json_schema(v, loose_optional=loose_optional) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: v if _not_schema(k, v) else _to_json_schema(v, loose_optional=loose_optional)
        for k, v in node.items()
    }
    if out.get("type") == "file":  # Swagger's binary payload
        del out["type"]
    if loose_optional and isinstance(out.get("properties"), dict):
        required = set(out.get("required") or ())
        out["properties"] = {
            name: prop
            if name in required or not isinstance(prop, dict) or prop.get("x-nullable") is False
            else _allow_null(prop)
            for name, prop in out["properties"].items()
        }
    if out.get("nullable") is True or out.get("x-nullable") is True:
        out = _allow_null(out)
    return out


@dataclass(frozen=True)
class Operation:
    spec: Spec
    method: str
    template: str
    pointer: str  # JSON pointer of the operation object
    regex: re.Pattern
    path_names: tuple[str, ...]
    fixed_query: tuple[tuple[str, str], ...]  # from an x-ms-paths key such as "/x?mode=chunk"
    literals: int
    op: dict
    parameters: tuple[tuple[str, dict], ...]  # (pointer, resolved parameter)

    @property
    def operation_id(self) -> str:
        return self.op.get("operationId", f"{self.method.upper()} {self.template}")


class Spec:
    def __init__(self, relpath: str) -> None:
        self.path = SPECS / relpath
        self.raw = json.loads(self.path.read_text(encoding="utf-8"))
        self.openapi3 = str(self.raw.get("openapi", "")).startswith("3.")
        self.devops = relpath.startswith("azure-devops/")
        self.microsoft = not self.openapi3
        source = _inherited(self.raw) if self.microsoft else self.raw
        self.doc = _to_json_schema(source, loose_optional=self.microsoft)
        definitions = self.doc.get("definitions", {})
        if self.devops and "IdentityDescriptor" in definitions:
            # Described as an object, sent as "type;identifier" (the examples, and the SDK's str).
            definitions["IdentityDescriptor"] = {
                "anyOf": [
                    definitions["IdentityDescriptor"],
                    {"type": "string", "pattern": "^[^;]+;"},
                ]
            }
        self.uri = "urn:contract:" + quote(relpath)
        self.registry = Registry().with_resource(self.uri, DRAFT4.create_resource(self.doc))
        self.operations = tuple(self._operations())

    def follow(self, pointer: str, node) -> tuple[str, dict]:
        """`node` (found at `pointer`) with its `$ref`s followed, and where it ends up."""
        for _ in range(20):
            if not (isinstance(node, dict) and "$ref" in node):
                break
            pointer = node["$ref"].removeprefix("#")
            node = self.doc
            for token in pointer.lstrip("/").split("/"):
                node = node[token.replace("~1", "/").replace("~0", "~")]
        return pointer, node

    def resolve(self, node: dict) -> dict:
        return self.follow("", node)[1]

    def _operations(self):
        for section in ("paths", "x-ms-paths"):
            for key, item in self.doc.get(section, {}).items():
                template, _, fixed = key.partition("?")
                shared = item.get("parameters", [])
                for method in METHODS:
                    if method not in item:
                        continue
                    op = item[method]
                    pointer = _pointer(section, key, method)
                    params = {}
                    for i, p in enumerate(shared):
                        where, resolved = self.follow(_pointer(section, key, "parameters", i), p)
                        params[(resolved["name"], resolved["in"])] = (where, resolved)
                    for i, p in enumerate(op.get("parameters", [])):
                        where, resolved = self.follow(pointer + _pointer("parameters", i), p)
                        params[(resolved["name"], resolved["in"])] = (where, resolved)
                    names, pattern, literals = [], "", 0
                    for part in re.split(r"(\{[^}]+\})", template.rstrip("/") or "/"):
                        if part.startswith("{") and part.endswith("}"):
                            names.append(part[1:-1])
                            # GitHub marks a parameter that spans segments (a ref: tags/v1).
                            _, param = params.get((part[1:-1], "path"), ("", {}))
                            pattern += "(.+)" if param.get("x-multi-segment") else "([^/]+)"
                        elif part:
                            literals += part.count("/") + len(part)
                            pattern += re.escape(part)
                    flags = re.IGNORECASE if self.microsoft else 0
                    yield Operation(
                        spec=self,
                        method=method,
                        template=key,
                        pointer=pointer,
                        regex=re.compile(f"^{pattern}/?$", flags),
                        path_names=tuple(names),
                        fixed_query=tuple(
                            (k, v[0]) for k, v in parse_qs(fixed, keep_blank_values=True).items()
                        ),
                        literals=literals,
                        op=op,
                        parameters=tuple(params.values()),
                    )

    def api_versions(self, param: dict) -> set[str] | None:
        """The api-version values this description defines for `param`, or None for any."""
        if param.get("enum"):
            return set(param["enum"])
        if self.devops:
            named = re.search(r"set to '([^']+)'", param.get("description", ""))
            return {named.group(1)} if named else None
        if self.microsoft:
            return {str(self.raw["info"]["version"])}
        return None

    def validate(self, pointer: str, value, what: str) -> None:
        validator = Draft4Validator(
            {"$ref": self.uri + "#" + quote(pointer, safe="/~")}, registry=self.registry
        )
        error = next(iter(sorted(validator.iter_errors(value), key=lambda e: e.path)), None)
        if error is not None:
            where = "".join(f"[{p!r}]" for p in error.absolute_path) or " (top level)"
            _fail(f"{what}{where}: {error.message[:300]}")


@cache
def _specs(service: str) -> tuple[Spec, ...]:
    if service not in SERVICES:
        _fail(f"unknown service {service!r}; known: {', '.join(sorted(SERVICES))}")
    return tuple(Spec(p) for p in SERVICES[service])


# --- checking a call ---------------------------------------------------------------------


def _scalar(value: str, schema: dict):
    """A query or path string as the JSON value its schema describes."""
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
    except ValueError:
        return value
    return value


def _param_schema(spec: Spec, pointer: str, param: dict) -> tuple[str, dict]:
    if "schema" in param:  # OpenAPI 3; also a Swagger body parameter
        return pointer + "/schema", spec.resolve(param["schema"])
    return pointer, param  # Swagger non-body: the parameter object is the schema


def _match(service: str, method: str, path: str, query: dict[str, list[str]]):
    candidates = []
    for spec in _specs(service):
        for op in spec.operations:
            if op.method != method.lower():
                continue
            found = op.regex.match(path)
            if not found:
                continue
            if any(query.get(k, [None])[0] != v for k, v in op.fixed_query):
                continue
            required = [
                p["name"]
                for _, p in op.parameters
                if p["in"] == "query" and p.get("required") and p["name"] != "api-version"
            ]
            satisfied = all(name in query for name in required)
            candidates.append(((satisfied, len(op.fixed_query), op.literals), op, found))
    if not candidates:
        known = {
            op.method for spec in _specs(service) for op in spec.operations if op.regex.match(path)
        }
        if known:
            _fail(f"{service}: {method.upper()} {path} is not an operation (only {sorted(known)})")
        _fail(f"{service}: no operation has the path {path}")
    candidates.sort(key=lambda c: c[0], reverse=True)
    _, op, found = candidates[0]
    return op, dict(zip(op.path_names, found.groups(), strict=True))


def _check_parameters(op: Operation, path_values: dict, query: dict[str, list[str]]) -> None:
    spec = op.spec
    for pointer, param in op.parameters:
        where, name = param["in"], param["name"]
        if where == "path":
            values = [path_values.get(name, "")]
        elif where == "query":
            if name not in query:
                if param.get("required"):
                    _fail(f"{op.operation_id}: required query parameter {name!r} is missing")
                continue
            values = query[name]
        else:
            continue
        if where == "query" and name == "api-version":
            allowed = spec.api_versions(param)
            for value in values:
                if allowed is not None and not _api_version_ok(spec, value, allowed):
                    _fail(
                        f"{op.operation_id}: api-version {value!r} is not one the description "
                        f"defines ({', '.join(sorted(allowed))})"
                    )
        schema_pointer, schema = _param_schema(spec, pointer, param)
        if schema.get("type") == "array":
            continue
        for value in values:
            if spec.devops and schema.get("enum"):  # the service reads enum names in any case
                value = next((e for e in schema["enum"] if str(e).lower() == value.lower()), value)
            spec.validate(
                schema_pointer, _scalar(value, schema), f"{op.operation_id}: {where} {name!r}"
            )


def _api_version_ok(spec: Spec, value: str, allowed: set[str]) -> bool:
    if value in allowed:
        return True
    if spec.devops:
        bases = {re.sub(r"-preview(\.\d+)?$", "", a) for a in allowed}
        return any(re.fullmatch(re.escape(b) + r"(-preview(\.\d+)?)?", value) for b in bases)
    return False


def _check_request(op: Operation, body) -> None:
    spec = op.spec
    if spec.openapi3:
        request = op.op.get("requestBody")
        if request is None:
            if body not in (None, b"", ""):
                _fail(f"{op.operation_id}: the operation takes no request body")
            return
        request = spec.resolve(request)
        if body is None:
            if request.get("required"):
                _fail(f"{op.operation_id}: the request body is required")
            return
        content = request.get("content", {})
        media = next((m for m in content if "json" in m), next(iter(content), None))
        if media is None or "schema" not in content[media]:
            return
        where, _ = spec.follow(op.pointer + "/requestBody", op.op["requestBody"])
        pointer = where + _pointer("content", media, "schema")
        spec.validate(pointer, body, f"{op.operation_id}: request body")
        return
    body_params = [(ptr, p) for ptr, p in op.parameters if p["in"] == "body"]
    form_params = [(ptr, p) for ptr, p in op.parameters if p["in"] == "formData"]
    if form_params:
        fields = body if isinstance(body, dict) else {}
        if body is not None and not isinstance(body, dict):
            _fail(f"{op.operation_id}: the request is a form; give its fields as a dict")
        for pointer, param in form_params:
            name = param["name"]
            if name not in fields:
                if param.get("required"):
                    _fail(f"{op.operation_id}: required form field {name!r} is missing")
                continue
            values = fields[name] if isinstance(fields[name], list) else [fields[name]]
            for value in values:
                spec.validate(
                    pointer, _scalar(str(value), param), f"{op.operation_id}: form {name!r}"
                )
        return
    if not body_params:
        if body not in (None, b"", ""):
            _fail(f"{op.operation_id}: the operation takes no request body")
        return
    pointer, param = body_params[0]
    if body is None:
        if param.get("required"):
            _fail(f"{op.operation_id}: the request body is required")
        return
    spec.validate(pointer + "/schema", body, f"{op.operation_id}: request body")


def _check_response(op: Operation, status: int, body) -> None:
    spec = op.spec
    responses = op.op.get("responses", {})
    key = str(status)
    if key not in responses:
        ranged = f"{key[0]}XX"
        if ranged in responses:
            key = ranged
        elif status >= 400 and "default" in responses:
            key = "default"
        else:
            _fail(
                f"{op.operation_id}: status {status} is not declared "
                f"(declared: {', '.join(responses)})"
            )
    pointer, response = spec.follow(op.pointer + _pointer("responses", key), responses[key])
    if spec.openapi3:
        content = response.get("content", {})
        media = next((m for m in content if "json" in m), None)
        if media is None or "schema" not in content[media]:
            if status == 204 and body not in (None, b"", ""):
                _fail(f"{op.operation_id}: status 204 has no body")
            return
        pointer += _pointer("content", media, "schema")
        schema = spec.resolve(content[media]["schema"])
    else:
        if "schema" not in response:
            if status == 204 and body not in (None, b"", ""):
                _fail(f"{op.operation_id}: status 204 has no body")
            return
        pointer += "/schema"
        schema = spec.resolve(response["schema"])
    if body is None:
        _fail(f"{op.operation_id}: status {status} has a body in the description; none was given")
    if spec.devops and schema.get("type") == "array":
        if not (isinstance(body, dict) and isinstance(body.get("value"), list)):
            _fail(f"{op.operation_id}: a list is sent as {{'count': n, 'value': [...]}}")
        if "count" in body and body["count"] != len(body["value"]):
            _fail(f"{op.operation_id}: count {body['count']} != {len(body['value'])} values")
        body = body["value"]
    spec.validate(pointer, body, f"{op.operation_id}: response {status} body")


def check(
    service: str,
    method: str,
    url: str,
    status: int,
    request_body: object | None,
    response_body: object | None,
    query: dict | None = None,
    *,
    response: bool = True,
) -> None:
    """Raise AssertionError unless the call fits `service`'s description (with `response`
    False, only the request: for answers the description has no word for).

    `url` is a path or a whole URL (its query string counts too); `query` adds parameters
    (values are strings or lists of strings). `request_body` is the parsed JSON body, or for a
    form (ACR's /oauth2/*) a dict of its fields; `response_body` is the parsed JSON response.
    """
    parts = urlsplit(url)
    params: dict[str, list[str]] = parse_qs(parts.query, keep_blank_values=True)
    for name, value in (query or {}).items():
        params[name] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    op, path_values = _match(service, method, parts.path or "/", params)
    _check_parameters(op, path_values, params)
    _check_request(op, request_body)
    if response:
        _check_response(op, status, response_body)


def operation(service: str, method: str, url: str, query: dict | None = None) -> str:
    """The operationId that `check` would hold this call to."""
    parts = urlsplit(url)
    params = parse_qs(parts.query, keep_blank_values=True)
    params.update({k: [str(v)] for k, v in (query or {}).items()})
    return _match(service, method, parts.path or "/", params)[0].operation_id


def schema_check(service: str, name: str, value: object) -> None:
    """Raise AssertionError unless `value` fits the named schema (a Swagger definition or an
    OpenAPI components schema), e.g. ("azure-devops", "ApprovalConfigSettings", settings)."""
    for spec in _specs(service):
        section = ("components", "schemas") if spec.openapi3 else ("definitions",)
        node = spec.doc
        for token in section:
            node = node.get(token, {})
        if name in node:
            spec.validate(_pointer(*section, name), value, f"{name}")
            return
    _fail(f"{service}: no schema named {name!r}")


# --- the descriptions' own examples ------------------------------------------------------


def _fill(op: Operation, values: dict) -> str:
    path = op.template.partition("?")[0]
    for name in op.path_names:
        path = path.replace("{" + name + "}", quote(str(values[name]), safe=""))
    return path


def _placeholder(op: Operation, name: str):
    for _, p in op.parameters:
        if p["name"] == name and p["in"] == "path":
            schema = op.spec.resolve(p.get("schema", p))
            if "example" in p or "example" in schema:
                return p.get("example", schema.get("example"))
            return 1 if schema.get("type") == "integer" else "example" + re.sub(r"\W", "", name)
    return "example"


def _swagger_examples(op: Operation) -> list[dict]:
    spec, out = op.spec, []
    for name, ref in op.op.get("x-ms-examples", {}).items():
        file = spec.path.parent / ref["$ref"]
        example = json.loads(file.read_text(encoding="utf-8-sig"))
        given = example.get("parameters", {})
        query: dict[str, str] = {}
        if spec.devops and "x-ms-vss-request-url" in example:
            parts = urlsplit(example["x-ms-vss-request-url"])
            path = parts.path
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        else:
            values = {n: given.get(n, _placeholder(op, n)) for n in op.path_names}
            path = _fill(op, values)
        request_body = None
        for _, param in op.parameters:
            if param["in"] == "query" and param["name"] in given and param["name"] not in query:
                query[param["name"]] = str(given[param["name"]])
            elif param["in"] == "body" and param["name"] in given:
                request_body = given[param["name"]]
            elif param["in"] == "formData" and param["name"] in given:
                request_body = {**(request_body or {}), param["name"]: given[param["name"]]}
            if param["in"] == "query" and param["name"] == "api-version":
                allowed = spec.api_versions(param)
                if allowed:  # Azure DevOps' examples were recorded against older versions
                    query["api-version"] = sorted(allowed)[0]
        query.update({k: v for k, v in op.fixed_query})
        for status, response in example.get("responses", {}).items():
            out.append(
                {
                    "name": name,
                    "operation_id": op.operation_id,
                    "method": op.method.upper(),
                    "url": path,
                    "query": dict(query),
                    "request_body": request_body,
                    "status": int(status),
                    "response_body": response.get("body"),
                }
            )
    return out


def _openapi_examples(op: Operation) -> list[dict]:
    spec, out = op.spec, []

    def values(content: dict) -> dict:
        media = next((m for m in content if "json" in m), None)
        found = {}
        for name, example in (content.get(media, {}).get("examples") or {}).items():
            example = spec.resolve(example)
            if example.get("value") is not None:  # a null example stands for "no example"
                found[name] = example["value"]
        return found

    requests = values(spec.resolve(op.op.get("requestBody", {})).get("content", {}))
    path = _fill(op, {n: _placeholder(op, n) for n in op.path_names})
    for status, response in op.op.get("responses", {}).items():
        if not status.isdigit():
            continue
        response = spec.resolve(response)
        responses = values(response.get("content", {}))
        if not responses and not response.get("content") and requests:  # e.g. a 204
            responses = {name: None for name in requests}
        for name, body in responses.items():
            request = requests.get(
                name, requests.get("default", next(iter(requests.values()), None))
            )
            out.append(
                {
                    "name": name,
                    "operation_id": op.operation_id,
                    "method": op.method.upper(),
                    "url": path,
                    "query": {},
                    "request_body": request,
                    "status": int(status),
                    "response_body": body,
                }
            )
    return out


def examples(service: str, operation_id: str) -> list[dict]:
    """The description's example exchanges for one operation, one dict per response:
    name, operation_id, method, url (a path), query, request_body, status, response_body.

    Path parameters the description gives no example of are filled with placeholders; the
    api-version is the one the description defines (Azure DevOps' examples carry the older
    one they were recorded with)."""
    for spec in _specs(service):
        for op in spec.operations:
            if op.operation_id == operation_id:
                return _openapi_examples(op) if spec.openapi3 else _swagger_examples(op)
    _fail(f"{service}: no operation {operation_id!r}")
    return []


def operations(service: str) -> list[str]:
    """The operationIds that `service`'s vendored description has."""
    return [op.operation_id for spec in _specs(service) for op in spec.operations]
