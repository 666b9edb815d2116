"""Cut the vendored API descriptions under specs/ out of the services' official ones.

Each subset keeps the chosen operations and everything they reference, transitively, so that
it is a self-contained document: local `$ref`s are copied over as they are; `$ref`s into another
file (Azure's common-types) are copied into the subset's own `definitions`/`parameters` under
the same name and the `$ref` rewritten to point there; `x-ms-examples` files are copied beside
the subset (one that the source lacks is dropped from `x-ms-examples` and reported). Nothing
else is changed: key order, descriptions and extensions stay as the source has them.

    python -m tests.contracts.make_subsets \
        --azure DIR    # a checkout (or partial copy) of Azure/azure-rest-api-specs
        --azure-sdk-python DIR  # the same of Azure/azure-sdk-for-python (its ML swagger)
        --github FILE  # rest-api-description: descriptions/api.github.com/api.github.com.json
        --ado DIR      # a checkout of MicrosoftDocs/vsts-rest-api-specs

SOURCE.md in specs/ records what each subset was cut from.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Top-level keys that are cut down rather than copied whole (webhooks: not operations we call).
SECTIONS = ("paths", "x-ms-paths", "definitions", "parameters", "responses", "components")
SECTIONS += ("webhooks", "x-webhooks")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Subset:
    root: str  # --azure, --azure-sdk-python, --github or --ado
    source: str  # path of the description inside that root
    out: str  # path under specs/
    operations: tuple[str, ...]  # operationIds
    # Definitions to keep although no kept operation references them (the approval check's
    # settings are modelled, but the check operations only say CheckConfiguration).
    extra: tuple[str, ...] = ()


AZURE_RM = "specification/containerregistry/resource-manager/Microsoft.ContainerRegistry"
AZURE_AKS = "specification/containerservice/resource-manager/Microsoft.ContainerService/aks"
AZURE_ACR = "specification/containerregistry/data-plane/Azure.ContainerRegistry"
AZURE_ML = (
    "specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices"
)
# The registry front end's API that azure-ai-ml calls, described only in the SDK's own repository.
AZURE_ML_REGISTRY = (
    "sdk/ml/azure-ai-ml/swagger/machinelearningservices/resource-manager/"
    "Microsoft.MachineLearningServices/preview/2021-10-01-dataplanepreview"
)
AZURE_ML_DISCOVERY = (
    "specification/machinelearningservices/data-plane/"
    "Microsoft.MachineLearningServices.RegistryDiscovery"
)

SUBSETS = (
    Subset(
        "azure",
        f"{AZURE_RM}/Registry/stable/2025-11-01/containerregistry.json",
        "azure/containerregistry/containerregistry.json",
        ("Registries_List", "Registries_Get"),
    ),
    Subset(
        "azure",
        f"{AZURE_AKS}/stable/2026-08-01/managedClusters.json",
        "azure/containerservice/managedClusters.json",
        (
            "ManagedClusters_ListClusterUserCredentials",
            "ManagedClusters_ListClusterAdminCredentials",
        ),
    ),
    Subset(
        "azure",
        f"{AZURE_ACR}/stable/2021-07-01/containerregistry.json",
        "azure/acr/containerregistry.json",
        (
            "Authentication_ExchangeAadAccessTokenForAcrRefreshToken",
            "Authentication_ExchangeAcrRefreshTokenForAcrAccessToken",
            "Authentication_GetAcrAccessTokenFromLogin",
        ),
    ),
    Subset(
        "azure",
        f"{AZURE_ML}/preview/2023-08-01-preview/mfe.json",
        "azure/machinelearningservices/2023-08-01-preview/mfe.json",
        ("ModelVersions_List", "ModelVersions_Get", "ModelVersions_CreateOrUpdate"),
    ),
    Subset(
        "azure",
        f"{AZURE_ML}/preview/2024-10-01-preview/mfe.json",
        "azure/machinelearningservices/2024-10-01-preview/mfe.json",
        ("Datastores_Get", "Datastores_ListSecrets"),
    ),
    Subset(
        "azure",
        f"{AZURE_ML_DISCOVERY}/stable/v1.0/registry-discovery.json",
        "azure/machinelearningservices/registry-discovery/registry-discovery.json",
        ("RegistryManagement_GetDiscoveryInfo",),
    ),
    Subset(
        "azure-sdk-python",
        f"{AZURE_ML_REGISTRY}/mfe.json",
        "azure/machinelearningservices/2021-10-01-dataplanepreview/mfe.json",
        (
            "ModelVersions_List",
            "ModelVersions_Get",
            "ModelVersions_CreateOrUpdate",
            "TemporaryDataReferences_CreateOrGetTemporaryDataReference",
            "DataReferences_GetBlobReferenceSAS",
        ),
    ),
    Subset(
        "github",
        "descriptions/api.github.com/api.github.com.json",
        "github/api.github.com.json",
        (
            "repos/get",
            "users/get-by-username",
            "teams/get-by-name",
            "repos/get-environment",
            "repos/create-or-update-environment",
            "actions/list-repo-variables",
            "actions/create-repo-variable",
            "actions/update-repo-variable",
            "repos/list-deployment-branch-policies",
            "repos/create-deployment-branch-policy",
            "git/get-ref",
            "git/create-ref",
            "git/update-ref",
            "repos/get-release-by-tag",
            "repos/create-release",
        ),
    ),
    Subset(
        "ado", "specification/core/7.1/core.json", "azure-devops/core/core.json", ("Projects_Get",)
    ),
    Subset(
        "ado",
        "specification/ims/7.1/identities.json",
        "azure-devops/identities/identities.json",
        ("Identities_Read Identities",),
    ),
    Subset(
        "ado",
        "specification/distributedTask/7.1/taskAgent.json",
        "azure-devops/taskAgent/taskAgent.json",
        (
            "Environments_List",
            "Environments_Add",
            "Variablegroups_Get",
            "Variablegroups_Get Variable Groups",
            "Variablegroups_Get Variable Groups By Id",
            "Variablegroups_Add",
            "Variablegroups_Update",
        ),
    ),
    Subset(
        "ado",
        "specification/approvalsAndChecks/7.1/pipelinesChecks.json",
        "azure-devops/pipelinesChecks/pipelinesChecks.json",
        ("Check Configurations_List", "Check Configurations_Add", "Check Configurations_Update"),
        ("ApprovalCheckConfiguration", "TaskCheckConfiguration", "GenericCheckConfiguration"),
    ),
    Subset(
        "ado",
        "specification/approvalsAndChecks/7.1/pipelinePermissions.json",
        "azure-devops/pipelinePermissions/pipelinePermissions.json",
        (
            "Pipeline Permissions_Get",
            "Pipeline Permissions_Update Pipeline Permisions For Resource",
        ),
    ),
    Subset(
        "ado",
        "specification/pipelines/7.1/pipelines.json",
        "azure-devops/pipelines/pipelines.json",
        ("Pipelines_List", "Pipelines_Create", "Pipelines_Get"),
    ),
    Subset(
        "ado",
        "specification/policy/7.1/policy.json",
        "azure-devops/policy/policy.json",
        ("Configurations_Create", "Configurations_List", "Configurations_Update"),
    ),
    Subset(
        "ado",
        "specification/git/7.1/git.json",
        "azure-devops/git/git.json",
        ("Repositories_Get Repository",),
    ),
    Subset(
        "ado",
        "specification/serviceEndpoint/7.1/serviceEndpoint.json",
        "azure-devops/serviceEndpoint/serviceEndpoint.json",
        ("Endpoints_Get Service Endpoints By Names",),
    ),
    Subset(
        "ado",
        "specification/build/7.1/build.json",
        "azure-devops/build/build.json",
        ("Definitions_List",),
    ),
)


def _case_insensitive(base: Path, rel: str) -> Path | None:
    """The file `rel` names under `base`, matching each part's case loosely (the Azure DevOps
    specs' x-ms-examples say `Configurations/` for a folder named `configurations/`)."""
    path = base
    for part in Path(rel).parts:
        if part in (".", ""):
            continue
        if part == "..":
            path = path.parent
            continue
        if (path / part).exists():
            path = path / part
            continue
        matches = (
            [p for p in path.iterdir() if p.name.lower() == part.lower()] if path.is_dir() else []
        )
        if len(matches) != 1:
            return None
        path = matches[0]
    return path.resolve() if path.is_file() else None


# The @octokit/openapi package republishes GitHub's description (generated/api.github.com.json)
# with an `x-octokit` object added to every operation and its own `info`; a handful of
# operations it replaces are none of ours. Read from there, the description is put back.
OCTOKIT_TITLE = "GitHub's official OpenAPI spec + Octokit extension"
GITHUB_INFO = {
    "version": "1.1.4",
    "title": "GitHub v3 REST API",
    "description": "GitHub's v3 REST API.",
    "contact_url": "https://support.github.com/contact?tags=dotcom-rest-api",
}


def _unoctokit(doc: dict) -> dict:
    info = doc.get("info", {})
    if info.get("title") != OCTOKIT_TITLE:
        return doc
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if isinstance(op, dict):
                op.pop("x-octokit", None)
    info.update({k: v for k, v in GITHUB_INFO.items() if k != "contact_url"})
    info["contact"]["url"] = GITHUB_INFO["contact_url"]
    return doc


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


@dataclass
class Cutter:
    main: Path  # the description being cut
    out_dir: Path  # where the subset file goes
    doc: dict = field(default_factory=dict)
    cache: dict[Path, dict] = field(default_factory=dict)
    origin: dict[tuple[str, ...], tuple[Path, tuple[str, ...]]] = field(default_factory=dict)
    examples: list[tuple[Path, str]] = field(default_factory=list)
    missing_examples: list[str] = field(default_factory=list)

    def load(self, path: Path) -> dict:
        if path not in self.cache:
            self.cache[path] = _unoctokit(json.loads(path.read_text(encoding="utf-8-sig")))
        return self.cache[path]

    def cut(self, operation_ids: tuple[str, ...], extra: tuple[str, ...] = ()) -> dict:
        source = self.load(self.main)
        wanted = set(operation_ids)
        found: set[str] = set()
        for key, value in source.items():
            if key in SECTIONS:
                continue
            self.doc[key] = value
        used_tags: set[str] = set()
        for section in ("paths", "x-ms-paths"):
            kept = {}
            for path, item in source.get(section, {}).items():
                ops = {
                    m: op
                    for m, op in item.items()
                    if m in METHODS and op.get("operationId") in wanted
                }
                if not ops:
                    continue
                new_item = {}
                for key, value in item.items():
                    if key in METHODS and key not in ops:
                        continue
                    new_item[key] = self.walk(value, self.main, (section, path, key))
                kept[path] = new_item
                for op in ops.values():
                    found.add(op["operationId"])
                    used_tags.update(op.get("tags", []))
            if kept:
                self.doc[section] = kept
        if missing := wanted - found:
            raise SystemExit(f"{self.main}: no operation {sorted(missing)}")
        for name in extra:
            self.ref(f"#/definitions/{name}", self.main)
        if "tags" in self.doc:
            self.doc["tags"] = [t for t in self.doc["tags"] if t.get("name") in used_tags]
        # A stable order for what was pulled in: the source's own order, sections as the source.
        return self.ordered(source)

    def ordered(self, source: dict) -> dict:
        result = {}
        order = list(source) + [k for k in self.doc if k not in source]
        for key in order:
            if key not in self.doc:
                continue
            value = self.doc[key]
            if key in ("definitions", "parameters", "responses"):
                value = self.sort_like(value, source.get(key, {}))
            if key == "components":
                value = {
                    sub: self.sort_like(value[sub], source.get("components", {}).get(sub, {}))
                    for sub in source.get("components", {})
                    if sub in value
                }
            result[key] = value
        return result

    @staticmethod
    def sort_like(section: dict, source_section: dict) -> dict:
        order = {name: i for i, name in enumerate(source_section)}
        return dict(sorted(section.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def walk(self, node, context: Path, where: tuple):
        if isinstance(node, list):
            return [self.walk(v, context, (*where, i)) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        if where and where[-1] == "x-ms-examples":
            return self.keep_examples(node, context)
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = self.ref(value, context)
            else:
                out[key] = self.walk(value, context, (*where, key))
        return out

    def keep_examples(self, node: dict, context: Path) -> dict:
        kept = {}
        for name, ref in node.items():
            rel = ref["$ref"]
            path = _case_insensitive(context.parent, rel)
            if path is None:
                self.missing_examples.append(rel)
                continue
            self.examples.append((path, posixpath.normpath(rel)))
            kept[name] = ref
        return kept

    def ref(self, ref: str, context: Path) -> str:
        file_part, _, fragment = ref.partition("#")
        target = (context.parent / file_part).resolve() if file_part else context
        tokens = tuple(_unescape(t) for t in fragment.strip("/").split("/"))
        depth = 3 if tokens[0] == "components" else 2
        head = tokens[:depth]
        if head in self.origin and self.origin[head] != (target, head):
            raise SystemExit(f"name clash for #/{'/'.join(head)}: {self.origin[head]} vs {target}")
        if head not in self.origin:
            self.origin[head] = (target, head)
            value = self.load(target)
            for token in head:
                value = value[token]
            slot = self.doc
            for token in head[:-1]:
                slot = slot.setdefault(token, {})
            slot[head[-1]] = None  # reserve before walking: recursive schemas
            slot[head[-1]] = self.walk(value, target, head)
        return "#/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--azure", type=Path)
    parser.add_argument("--azure-sdk-python", type=Path)
    parser.add_argument("--github", type=Path, help="the api.github.com.json file")
    parser.add_argument("--ado", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "specs")
    args = parser.parse_args(argv)
    roots = {
        "azure": args.azure,
        "azure-sdk-python": args.azure_sdk_python,
        "github": args.github,
        "ado": args.ado,
    }
    for subset in SUBSETS:
        root = roots[subset.root]
        if root is None:
            continue
        main_file = root if subset.root == "github" else root / subset.source
        out_file = args.out / subset.out
        cutter = Cutter(main_file.resolve(), out_file.parent)
        doc = cutter.cut(subset.operations, subset.extra)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        out_file.write_text(text, encoding="utf-8")
        for path, rel in cutter.examples:
            dest = out_file.parent / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        note = f" (examples missing in the source: {cutter.missing_examples})"
        print(
            f"{out_file.relative_to(args.out)}: {len(text)} bytes"
            + (note if cutter.missing_examples else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
