"""`release-notes` and `publish-release`: aiship's own releases, which other repositories pin.

The version is pyproject.toml's; its notes are CHANGELOG.md's section for it (Keep a Changelog:
`## [X.Y.Z] - YYYY-MM-DD`). Publishing tags the commit `vX.Y.Z`, moves the major tag `vX` to it
(final versions only), and publishes a GitHub release with the notes, in that order: the release
is the last write, so a run stopped half-way is finished by the next, and a version that already
has its release is left alone.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..support.errors import ConfigError
from ..support.paths import project_dir
from .command import Command

if TYPE_CHECKING:
    import requests

    from ..clients.github import GitHubApi

HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\]", re.MULTILINE)
LINK_DEFINITION = re.compile(r"^\[[^\]]+\]:\s", re.MULTILINE)  # `[0.1.0]: https://...` at the end
FINAL = re.compile(r"^\d+\.\d+\.\d+$")  # X.Y.Z; anything else (0.2.0rc1) is a pre-release
REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")

log = logging.getLogger(__name__)


def project_version(pyproject: Path) -> str:
    """`[project] version` of PYPROJECT."""
    try:
        version = tomllib.loads(pyproject.read_text())["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ConfigError(f"{pyproject}: no [project] version ({type(exc).__name__})") from None
    return str(version)


def release_notes(changelog: str, version: str, name: str = "CHANGELOG.md") -> str:
    """The text of VERSION's section of CHANGELOG (its heading left out), or a one-line refusal
    when there is none or it is empty."""
    headings = list(HEADING.finditer(changelog))
    for index, heading in enumerate(headings):
        if heading.group("version") != version:
            continue
        end = headings[index + 1].start() if index + 1 < len(headings) else len(changelog)
        section = changelog[heading.end() : end]
        section = section.split("\n", 1)[1] if "\n" in section else ""  # the rest of the heading
        link = LINK_DEFINITION.search(section)
        notes = (section[: link.start()] if link else section).strip()
        if not notes:
            raise ConfigError(f"{name}: the section for {version} is empty: say what changed")
        return notes + "\n"
    raise ConfigError(
        f"{name} has no section for {version}: add `## [{version}] - YYYY-MM-DD` with what "
        "changed before releasing it"
    )


@dataclass(frozen=True)
class Notes:
    version: str
    notes: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def final(self) -> bool:
        return bool(FINAL.match(self.version))

    @property
    def major_tag(self) -> str | None:
        """`vX` for a final version X.Y.Z; a pre-release moves no major tag."""
        return f"v{self.version.split('.')[0]}" if self.final else None

    def describe(self) -> str:
        return f"read the release notes of {self.tag} ({len(self.notes.splitlines())} lines)"

    def outputs(self) -> dict[str, str]:
        return {"version": self.version, "tag": self.tag, "notes": self.notes}


def read_notes(changelog: Path | None, pyproject: Path | None) -> Notes:
    """pyproject's version and CHANGELOG's section for it (both in the project's folder by
    default); refused when either is missing."""
    changelog = changelog or project_dir() / "CHANGELOG.md"
    version = project_version(pyproject or project_dir() / "pyproject.toml")
    try:
        text = changelog.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{changelog} cannot be read ({exc.strerror}): check --changelog"
        ) from None
    return Notes(version, release_notes(text, version, changelog.name))


@dataclass(frozen=True)
class Published:
    tag: str
    commit: str
    released: bool  # false: the release was there already
    major_tag: str = ""
    url: str = ""

    def outputs(self) -> dict[str, object]:
        return asdict(self)


def publish_release(api: GitHubApi, notes: Notes, commit: str) -> Published:
    """Tag COMMIT with NOTES' version, move its major tag there, publish the release; nothing
    when that version has a release already."""
    repo = f"/repos/{api.repo}"
    existing = api.find(f"{repo}/releases/tags/{notes.tag}", what=f"look for release {notes.tag}")
    if existing is not None:
        log.info("%s is released already (%s): nothing to do", notes.tag, existing.get("html_url"))
        return Published(notes.tag, commit, released=False, url=existing.get("html_url", ""))
    tagged = _tag(api, notes.tag, commit, move=False)
    if notes.major_tag:
        _tag(api, notes.major_tag, tagged, move=True)
    body = {
        "tag_name": notes.tag,
        "name": notes.tag,
        "body": notes.notes,
        "prerelease": not notes.final,
        "make_latest": "true" if notes.final else "false",
    }
    release = _write(api, "POST", f"{repo}/releases", f"publish release {notes.tag}", body)
    log.info("published %s at %s: %s", notes.tag, tagged, release.get("html_url", ""))
    return Published(notes.tag, tagged, True, notes.major_tag or "", release.get("html_url", ""))


def _tag(api: GitHubApi, tag: str, commit: str, *, move: bool) -> str:
    """Point refs/tags/TAG at COMMIT and return where it points: created when missing; when it
    exists, moved (MOVE) or left where it is (a tag made by hand, or by a run stopped before its
    release)."""
    repo, what = f"/repos/{api.repo}", f"tag {tag}"
    found = api.find(f"{repo}/git/ref/tags/{tag}", what=f"look for {what}")
    if found is None:
        _write(
            api,
            "POST",
            f"{repo}/git/refs",
            f"create {what}",
            {"ref": f"refs/tags/{tag}", "sha": commit},
        )
        log.info("tagged %s as %s", commit, tag)
        return commit
    current = str(found.get("object", {}).get("sha", ""))
    if not move or current == commit:
        if current != commit:
            log.info("%s exists at %s, not %s: it is released from there", tag, current, commit)
        return current
    body = {"sha": commit, "force": True}  # a major tag moves forward to each of its releases
    _write(api, "PATCH", f"{repo}/git/refs/tags/{tag}", f"move {what}", body)
    log.info("moved %s from %s to %s", tag, current, commit)
    return commit


def _write(api: GitHubApi, method: str, path: str, what: str, body: dict) -> dict:
    """A write of the repository's contents (refs, releases), for which the token needs
    contents: write; what GitHub answered."""
    return api.call(method, path, what=what, permission="contents: write", json=body).json()


@dataclass(frozen=True)
class PublishPlan:
    notes: Notes
    repo: str
    commit: str
    api_url: str
    token_variable: str

    def describe(self) -> str:
        major = f", move {self.notes.major_tag} there" if self.notes.major_tag else ""
        return (
            f"tag {self.commit} of {self.repo} as {self.notes.tag}{major} and publish its release "
            f"through {self.api_url} with {self.token_variable}, unless it is released already"
        )


def _notes_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--changelog", type=Path, help="Keep a Changelog file (default: CHANGELOG.md)"
    )
    parser.add_argument(
        "--pyproject", type=Path, help="whose [project] version (default: pyproject.toml)"
    )


def _publish_flags(parser: argparse.ArgumentParser) -> None:
    from ..clients.github import DEFAULT_API_URL

    _notes_flags(parser)
    parser.add_argument("--repo", help="OWNER/NAME [GITHUB_REPOSITORY]")
    parser.add_argument("--commit", help="the commit to release, 40 hex digits [GITHUB_SHA]")
    parser.add_argument(
        "--api-url", help=f"GitHub API (default: $GITHUB_API_URL, else {DEFAULT_API_URL})"
    )


def _notes_plan(args: argparse.Namespace) -> Notes:
    return read_notes(args.changelog, args.pyproject)


def _notes_run(plan: Notes) -> Notes:
    log.info("release notes of %s:\n%s", plan.tag, plan.notes.rstrip())
    return plan


def _publish_plan(args: argparse.Namespace) -> PublishPlan:
    from ..clients.github import DEFAULT_API_URL, TOKEN_VARIABLES
    from .setup.common import token_variable

    repo = args.repo or os.environ.get("GITHUB_REPOSITORY", "")
    if not REPO.match(repo):
        raise ConfigError(f"--repo {repo!r} is not OWNER/NAME (or set GITHUB_REPOSITORY)")
    commit = args.commit or os.environ.get("GITHUB_SHA", "")
    if not COMMIT.match(commit):
        raise ConfigError(f"--commit {commit!r} is not a full commit sha (or set GITHUB_SHA)")
    api_url = args.api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    notes = read_notes(args.changelog, args.pyproject)
    return PublishPlan(notes, repo, commit, api_url, token_variable(TOKEN_VARIABLES))


def _publish_run(plan: PublishPlan) -> Published:
    from ..clients.github import GitHubApi, github_session
    from .setup.common import token_from_env

    _, token = token_from_env((plan.token_variable,))
    session: requests.Session
    with github_session(token) as session:
        return publish_release(GitHubApi(session, plan.api_url, plan.repo), plan.notes, plan.commit)


COMMANDS = (
    Command(
        "release-notes",
        help="the CHANGELOG section of pyproject's version; refused when it has none",
        flags=_notes_flags,
        plan=_notes_plan,
        run=_notes_run,
    ),
    Command(
        "publish-release",
        help="tag vX.Y.Z (pyproject's version), move vX, publish its GitHub release with the notes",
        epilog="token: GITHUB_TOKEN or GH_TOKEN, with contents: write on the repository",
        flags=_publish_flags,
        plan=_publish_plan,
        run=_publish_run,
    ),
)
