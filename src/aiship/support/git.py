"""What is being built: the commit, its time, the branch and the source URL.

The CI system's word wins (GitHub Actions, Azure Pipelines); else git's, asked at ROOT.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import StepError
from .processes import run


def ci_revision(env: Mapping[str, str] | None = None) -> str:
    """The commit the CI system says it builds (GitHub Actions, Azure Pipelines), or ""."""
    env = os.environ if env is None else env
    return env.get("GITHUB_SHA") or env.get("BUILD_SOURCEVERSION") or ""


def ci_run(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CI run this step runs in (system, id, url); system "local" outside CI."""
    env = os.environ if env is None else env
    if env.get("GITHUB_RUN_ID"):
        url = f"{env.get('GITHUB_SERVER_URL')}/{env.get('GITHUB_REPOSITORY')}"
        return {
            "system": "github",
            "id": env["GITHUB_RUN_ID"],
            "url": f"{url}/actions/runs/{env['GITHUB_RUN_ID']}",
        }
    if env.get("TF_BUILD") and env.get("BUILD_BUILDID"):
        project = f"{env.get('SYSTEM_COLLECTIONURI', '')}{env.get('SYSTEM_TEAMPROJECT', '')}"
        return {
            "system": "azure-pipelines",
            "id": env["BUILD_BUILDID"],
            "url": f"{project}/_build/results?buildId={env['BUILD_BUILDID']}",
        }
    return {"system": "local", "id": "", "url": ""}


def git_revision(root: Path, env: Mapping[str, str] | None = None) -> str:
    """The commit being built: the CI system's word for it, else the one checked out at ROOT,
    else "unknown"."""
    return ci_revision(env) or _git(root, "rev-parse", "HEAD") or "unknown"


def git_commit_time(root: Path) -> str:
    """When HEAD was committed, in UTC: a rebuild of the same commit and model gives the same
    labels, so the same image (the clock would change them on every build)."""
    stamp = _git(root, "log", "-1", "--format=%ct", "HEAD")
    moment = datetime.fromtimestamp(int(stamp), UTC) if stamp else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def git_branch(root: Path, env: Mapping[str, str] | None = None) -> str:
    """The branch being built: the CI system's word for it, else git's; "" when detached."""
    env = os.environ if env is None else env
    return (
        (env.get("GITHUB_REF_NAME") if env.get("GITHUB_REF_TYPE", "branch") == "branch" else "")
        or env.get("BUILD_SOURCEBRANCHNAME")
        or _git(root, "branch", "--show-current")
    )


def git_source(root: Path) -> str:
    """The URL of the `origin` remote without any credentials in it, or "unknown"."""
    url = _git(root, "remote", "get-url", "origin")
    if not url:
        return "unknown"
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _git(root: Path, *args: str) -> str:
    """git's answer, or "" where there is none (no git, no repository, no such ref)."""
    try:
        done = run(["git", "-C", str(root), *args], what=f"`git {args[0]}`", timeout=30)
    except (OSError, StepError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def on_branch(root: Path, revision: str, refs: tuple[str, ...] = ("origin/main", "main")) -> str:
    """The first of REFS whose history contains REVISION, else ""; StepError when REVISION is
    not in ROOT's history at all (a shallow checkout cannot tell)."""
    if not _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"):
        raise StepError(
            f"commit {revision} is not in the history of the checkout at {root}: check out with "
            "the whole history (actions/checkout fetch-depth: 0; Azure Pipelines fetchDepth: 0)"
        )
    for ref in refs:
        if not _git(root, "rev-parse", "--verify", "--quiet", ref):
            continue
        command = ["git", "-C", str(root), "merge-base", "--is-ancestor", revision, ref]
        if run(command, what="`git merge-base`", timeout=30).returncode == 0:
            return ref
    return ""
