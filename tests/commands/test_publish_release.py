"""release-notes and publish-release: a version's CHANGELOG section, refused when missing, and the
tag, the major tag and the GitHub release, against a fake held to GitHub's REST description."""

from __future__ import annotations

import re

import pytest
from werkzeug import Response

from aiship.clients.github import GitHubApi, github_session
from aiship.commands.publish_release import Notes, publish_release, release_notes
from aiship.support.errors import ConfigError
from tests.clirun import run_steps
from tests.commands.setup import conftest as setup_fixtures
from tests.commands.setup.conftest import GITHUB_TOKEN, REPO
from tests.commands.setup.fakes import FakeGitHub, answer, described
from tests.repo import REPO_ROOT

CHANGELOG = """\
# Changelog

## [Unreleased]

- not yet

## [1.2.0] - 2026-12-07

### Added

- the thing

## [1.1.0] - 2026-11-01

- older

[1.2.0]: https://example.com/compare/v1.1.0...v1.2.0
[1.1.0]: https://example.com/releases/v1.1.0
"""
COMMIT = "a" * 40
OLDER = "b" * 40

# The local HTTPS server and its CA, as the setup tests make them.
ca, ca_pem = setup_fixtures.ca, setup_fixtures.ca_pem
https_server, trust_fake_ca = setup_fixtures.https_server, setup_fixtures.trust_fake_ca


def test_a_versions_section_is_its_notes_without_heading_or_links():
    assert release_notes(CHANGELOG, "1.2.0") == "### Added\n\n- the thing\n"
    assert release_notes(CHANGELOG, "1.1.0") == "- older\n"


@pytest.mark.parametrize(
    ("text", "version", "words"),
    [
        (CHANGELOG, "1.3.0", "CHANGELOG.md has no section for 1.3.0: add `## [1.3.0]"),
        (CHANGELOG, "1.2", "no section for 1.2:"),  # a prefix of 1.2.0 is not 1.2.0
        ("## [2.0.0] - 2026-12-07\n\n## [1.0.0]\n- x\n", "2.0.0", "section for 2.0.0 is empty"),
    ],
)
def test_a_version_without_a_section_is_refused_in_one_line(text, version, words):
    with pytest.raises(ConfigError) as refused:
        release_notes(text, version)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_the_command_refuses_a_version_without_notes_in_one_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.3.0"\n')
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG)
    done = run_steps("release-notes", cwd=tmp_path, drop=("AISHIP_PROJECT_DIR",))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no section for 1.3.0" in done.stderr


def test_this_repositorys_changelog_has_the_section_of_its_version():
    done = run_steps("release-notes", "--json", drop=("AISHIP_PROJECT_DIR",))
    assert done.returncode == 0, done.stderr
    assert '"notes": "' in done.stdout


class FakeGitHubReleases(FakeGitHub):
    """The git refs and releases of one repository."""

    def __init__(self, token: str, repo: str, base_url: str) -> None:
        super().__init__(token, repo, base_url)
        self.tags: dict[str, str] = {}  # name -> commit
        self.releases: dict[str, dict] = {}  # tag -> body sent

    def routes(self) -> list:
        repo = re.escape(f"/repos/{self.repo}")
        return [
            ("GET", repo + r"/git/ref/tags/([^/]+)", self.get_ref),
            ("POST", repo + r"/git/refs", self.create_ref),
            ("PATCH", repo + r"/git/refs/tags/([^/]+)", self.update_ref),
            ("GET", repo + r"/releases/tags/([^/]+)", self.get_release),
            ("POST", repo + r"/releases", self.create_release),
        ]

    def ref_json(self, tag: str) -> dict:
        ref = described("git/get-ref", ref=f"refs/tags/{tag}")
        return {**ref, "object": {**ref["object"], "type": "commit", "sha": self.tags[tag]}}

    def get_ref(self, request, body, tag) -> Response:
        return answer(self.ref_json(tag)) if tag in self.tags else self.not_found()

    def create_ref(self, request, body) -> Response:
        tag = body["ref"].removeprefix("refs/tags/")
        if tag in self.tags:
            return answer({"message": "Reference already exists", "status": "422"}, 422)
        self.tags[tag] = body["sha"]
        return answer(self.ref_json(tag), 201)

    def update_ref(self, request, body, tag) -> Response:
        if tag not in self.tags:
            return answer({"message": "Reference does not exist", "status": "422"}, 422)
        self.tags[tag] = body["sha"]
        return answer(self.ref_json(tag))

    def release_json(self, tag: str) -> dict:
        url = f"https://github.com/{self.repo}/releases/tag/{tag}"
        return described("repos/get-release-by-tag", tag_name=tag, html_url=url)

    def get_release(self, request, body, tag) -> Response:
        return answer(self.release_json(tag)) if tag in self.releases else self.not_found()

    def create_release(self, request, body) -> Response:
        if body["tag_name"] not in self.tags:  # GitHub would tag the default branch: not wanted
            return answer({"message": "tag_name is not a tag", "status": "422"}, 422)
        self.releases[body["tag_name"]] = body
        return answer(self.release_json(body["tag_name"]), 201)


@pytest.fixture
def github(https_server, trust_fake_ca):
    fake = FakeGitHubReleases(GITHUB_TOKEN, REPO, https_server.url_for("").rstrip("/"))
    https_server.expect_request(re.compile(".*")).respond_with_handler(fake)
    yield fake
    assert fake.held.violations == [], "the fake left GitHub's REST description"
    assert fake.held.checked == len(fake.requests)


def publish(github: FakeGitHubReleases, notes: Notes, commit: str = COMMIT):
    with github_session(GITHUB_TOKEN, retries=0) as session:
        return publish_release(GitHubApi(session, github.base_url, REPO), notes, commit)


def test_a_new_version_is_tagged_its_major_tag_moved_and_released_with_its_notes(github):
    github.tags["v1"] = OLDER  # 1.1.0's
    published = publish(github, Notes("1.2.0", "### Added\n\n- the thing\n"))

    assert github.tags == {"v1.2.0": COMMIT, "v1": COMMIT}
    release = github.releases["v1.2.0"]
    assert release["body"] == "### Added\n\n- the thing\n" and release["name"] == "v1.2.0"
    assert release["make_latest"] == "true" and release["prerelease"] is False
    assert published.outputs()["released"] is True
    assert [(seen.method, seen.path.rsplit("/", 2)[-1]) for seen in github.writes()] == [
        ("POST", "refs"),  # the version's tag
        ("PATCH", "v1"),  # the major tag, moved
        ("POST", "releases"),  # last: a release means all is done
    ]


def test_a_released_version_is_left_alone(github):
    publish(github, Notes("1.2.0", "notes\n"))
    writes = len(github.writes())
    again = publish(github, Notes("1.2.0", "notes\n"), commit=OLDER)

    assert again.released is False and len(github.writes()) == writes
    assert github.tags["v1.2.0"] == COMMIT


def test_a_run_stopped_before_its_release_is_finished_from_the_tag_it_made(github):
    github.tags["v1.2.0"] = OLDER  # tagged, then the run failed
    published = publish(github, Notes("1.2.0", "notes\n"))

    assert github.tags == {"v1.2.0": OLDER, "v1": OLDER}
    assert published.commit == OLDER and "v1.2.0" in github.releases


def test_a_pre_release_moves_no_major_tag(github):
    github.tags["v1"] = OLDER
    publish(github, Notes("2.0.0rc1", "notes\n"))

    assert github.tags == {"v1": OLDER, "v2.0.0rc1": COMMIT}
    assert github.releases["v2.0.0rc1"]["prerelease"] is True


def test_a_token_without_contents_write_is_named(github):
    github.failures[("POST", f"/repos/{REPO}/git/refs")] = [(403, {})]
    with pytest.raises(Exception, match="permission 'contents: write'"):
        publish(github, Notes("1.2.0", "notes\n"))
    assert github.releases == {}


def test_the_workflow_publishes_with_contents_write_only_after_the_notes_are_checked():
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/publish-release.yml").read_text())
    jobs = workflow["jobs"]
    assert workflow["permissions"] == {}
    assert jobs["notes"]["permissions"] == {"contents": "read"}
    assert jobs["publish"]["permissions"] == {"contents": "write"}
    assert jobs["publish"]["needs"] == "notes"
    runs = [step.get("run") for job in jobs.values() for step in job["steps"]]
    assert "aiship release-notes" in runs and "aiship publish-release" in runs
