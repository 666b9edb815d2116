"""What is being built, as git and the CI systems say."""

from __future__ import annotations

from steps.support.git import git_source


def test_source_label_never_carries_credentials(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "steps.support.git._git", lambda root, *args: "https://user:token@example.org/x.git"
    )

    assert git_source(tmp_path) == "https://example.org/x.git"
