"""What is being built, as git and the CI systems say."""

from __future__ import annotations

from aiship.support.git import ci_run, git_source


def test_source_label_never_carries_credentials(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "aiship.support.git._git", lambda root, *args: "https://user:token@example.org/x.git"
    )

    assert git_source(tmp_path) == "https://example.org/x.git"


def test_ci_run_names_the_run_of_either_system_and_local_otherwise():
    github = {
        "GITHUB_RUN_ID": "42",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/app",
    }
    azure = {
        "TF_BUILD": "True",
        "BUILD_BUILDID": "7",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
        "SYSTEM_TEAMPROJECT": "app",
    }
    assert ci_run(github)["url"] == "https://github.com/acme/app/actions/runs/42"
    assert ci_run(azure) == {
        "system": "azure-pipelines",
        "id": "7",
        "url": "https://dev.azure.com/acme/app/_build/results?buildId=7",
    }
    assert ci_run({}) == {"system": "local", "id": "", "url": ""}
