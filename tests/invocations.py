"""One valid invocation of every step command: what its plan must accept, and what its run must
then never refuse for a flag's or a setting's sake (exit 2), whatever the outside systems do.

Every outside system is named at an address on 127.0.0.1 that nothing answers (UNREACHABLE), or
is a folder in WORK, so a real run fails there, as a run fails when a service is down, and
touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiship.clients.azure_devops import PAT_VARIABLE
from tests.pipelines.ci_systems import CERTIFICATE, write_certificate

DIGEST = "sha256:" + "d" * 64
# Settings a test must not inherit from the machine: a registry, a subscription, a token.
INHERITED = ("AZURE_", "REGISTRY_", "ACR_", "AKS_", "GITHUB_", "GH_", "KUBECONFIG", "DOCKER_")


@dataclass(frozen=True)
class Invocation:
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    runs_here: bool = True  # False: its real run would need what a test may not reach


def invocations(
    work: Path, model_dir: Path, project: Path, unreachable: int
) -> dict[str, Invocation]:
    """Command -> one invocation whose flags and settings are all valid, run in PROJECT (a
    project to ship: Dockerfile, source, lock, manifests, the committed signing certificate),
    with MODEL_DIR a model as fetch-model leaves it and WORK a folder of the test's own."""
    closed = f"127.0.0.1:{unreachable}"
    image = f"{closed}/acme/app"
    pinned = f"{image}@{DIGEST}"
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://{closed}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    trusted = str(project / CERTIFICATE)
    if not (project / CERTIFICATE).exists():
        write_certificate(project / CERTIFICATE)
    store = work / "store"
    store.mkdir(exist_ok=True)
    notation = ("--notation-home", str(work / "notation"))
    (work / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1.0.0"\n')
    (work / "CHANGELOG.md").write_text("# Changelog\n\n## [1.0.0] - 2026-12-07\n\n- first\n")
    release = (
        "--changelog",
        str(work / "CHANGELOG.md"),
        "--pyproject",
        str(work / "pyproject.toml"),
    )
    cluster = ("--target", "kubernetes", "--kubeconfig", str(kubeconfig), "--namespace", "ns")
    return {
        "publish-model": Invocation(("--store", str(store), "--model-dir", str(model_dir))),
        "fetch-model": Invocation(
            ("--store", str(store), "--name", "digits", "--dest", str(work / "fetched"))
        ),
        "build-image": Invocation(
            ("--model-dir", str(model_dir), "--image", image),
            {"DOCKER_HOST": f"tcp://{closed}"},
        ),
        "push-image": Invocation(("--image", f"{image}:v1"), {"DOCKER_HOST": f"tcp://{closed}"}),
        "verify-push": Invocation(("--image", f"{image}:v1", "--digest", DIGEST)),
        # It attests the commit the CI system says it builds (here no checkout could say).
        "attest-image": Invocation(
            ("--image", pinned, *notation, "--key", "aiship"), {"GITHUB_SHA": "c" * 40}
        ),
        "verify-image": Invocation(
            (
                "--image",
                pinned,
                *notation,
                "--identity",
                "C=ZZ,ST=local,O=aiship,CN=aiship",
                "--certificate",
                trusted,
            )
        ),
        "evaluate-model": Invocation(
            ("--image", pinned, "--model-dir", str(model_dir), "--no-baseline"),
            {"DOCKER_HOST": f"tcp://{closed}"},
        ),
        "promote-image": Invocation(("--image", pinned, "--tag", "main")),
        "resolve-image": Invocation(("--image", f"{image}:main", "--digest", "")),
        # Its one outside system is Entra ID, whose credential chain would ask the machine's
        # metadata address: planned here, never run.
        "aks-credentials": Invocation(
            ("--resource-group", "rg", "--cluster", "aks", "--out", str(work / "aks.yaml")),
            {"AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001"},
            runs_here=False,
        ),
        "deploy": Invocation(
            (*cluster, "--image", pinned, "--overlay", "staging", "--smoke-test", "--timeout", "5")
        ),
        "rollback": Invocation((*cluster, "--timeout", "5")),
        "abort": Invocation(cluster),
        "release-summary": Invocation(
            ("--image", pinned, "--kubeconfig", str(kubeconfig), "--namespace", "ns")
        ),
        "smoke-test": Invocation(("--url", f"http://{closed}", "--timeout", "1")),
        "setup github": Invocation(
            ("--repo", "acme/app", "--reviewers", "alice", "--api-url", f"https://{closed}"),
            {"GITHUB_TOKEN": "test-token"},
        ),
        # It reads two files and writes nothing: its run has no outside system to fail.
        "release-notes": Invocation(release, runs_here=False),
        "publish-release": Invocation(
            (
                *release,
                "--repo",
                "acme/app",
                "--commit",
                "a" * 40,
                "--api-url",
                f"https://{closed}",
            ),
            {"GITHUB_TOKEN": "test-token"},
        ),
        "setup azure-devops": Invocation(
            ("--org", f"https://{closed}/acme", "--project", "p", "--approvers", "a@example.com"),
            {PAT_VARIABLE: "test-token"},
        ),
    }
