"""What another repository is told to pin names this version's release tag, `vX.Y.Z`: README,
docs, and the templates' usage comments, in GitHub's `uses: ...@TAG` and `aiship-ref:`, pip's
`git+...@TAG` and Azure's `ref: refs/tags/TAG`.

The full tag, not the major tag `vX` that publish-release also moves: the tag pins the steps and
their hash lock along with the YAML (README: "two runs install the same bytes"), which a moving tag
would not; under 1.0 a minor version may break its callers, so `v0` would promise nothing; and
Renovate or Dependabot in the consumer's repository propose each new full tag as a reviewable
change. The moving `vX` is there for those who choose to follow a major version."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from tests.repo import REPO_ROOT

USAGE = sorted(
    p.relative_to(REPO_ROOT).as_posix()
    for p in [
        REPO_ROOT / "README.md",
        *(REPO_ROOT / "docs").glob("*.md"),
        *(REPO_ROOT / ".azure-pipelines").rglob("*.yml"),
        *(REPO_ROOT / ".github" / "actions").rglob("*.yml"),
    ]
)
PINS = re.compile(
    r"OWNER/aiship(?:/[\w./*-]+)?@(?P<uses>[^\s`\"']+)"  # uses: and pip's git+https://...@
    r"|aiship-ref: (?P<ref>[^\s`\"']+)"
    r"|ref: refs/tags/(?P<azure>[^\s,}`\"']+)"
    r"|@COMMIT # (?P<comment>[^\s`\"']+)"  # pinned by commit, its tag in the comment
)
PLACEHOLDER = "COMMIT"  # README's "(and `aiship-ref: COMMIT`)": any commit, not a tag


def release_tag() -> str:
    return "v" + tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def pins(text: str) -> list[str]:
    return [value for m in PINS.finditer(text) for value in m.groups() if value]


def test_readme_and_the_templates_pin_something():
    assert len(pins((REPO_ROOT / "README.md").read_text())) >= 10
    assert pins((REPO_ROOT / ".azure-pipelines/templates/build-job.yml").read_text())


@pytest.mark.parametrize("path", USAGE)
def test_every_pin_another_repository_is_shown_names_this_release(path):
    found = [pin for pin in pins((REPO_ROOT / path).read_text()) if pin != PLACEHOLDER]
    assert set(found) <= {release_tag()}, f"{path} pins {sorted(set(found))}, not {release_tag()}"


def test_a_pin_of_another_version_is_caught():
    stale = "uses: OWNER/aiship/.github/workflows/reusable-ci.yml@v0.0.9\nref: refs/tags/v1\n"
    assert pins(stale) == ["v0.0.9", "v1"]


def test_the_service_reports_the_project_version():
    """The V2 server metadata and the OpenAPI description name the version being released."""
    from aiship.app.rest import SERVER_VERSION

    openapi = json.loads((REPO_ROOT / "src/aiship/app/openapi.json").read_text())
    assert SERVER_VERSION == openapi["info"]["version"] == release_tag().removeprefix("v")
