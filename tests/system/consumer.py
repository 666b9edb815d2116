"""Another team's repository that ships its own app and model with our pipelines: its workflows
and pipelines are the README's "Use it from your repository" snippets, as a user copies them; its
Dockerfile, app/, lock and manifests/ start as copies of ours, as a new project's do, its
Dockerfile marked with a label of its own; it keeps its model in a store of its own (a folder in
the repository, as act copies it)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

from aiship.commands.build_image import copy_project
from aiship.support.paths import MANIFESTS_FOLDER
from tests.pipelines.ci_systems import AISHIP
from tests.repo import REPO_ROOT

README = REPO_ROOT / "README.md"
SNIPPET = re.compile(r"<!-- consumer: (\S+) -->\n```yaml\n(.*?)```", re.DOTALL)
REPOSITORY = "acme/handwriting"  # the consumer's own name on GitHub
MODEL_NAME, MODEL_VERSION = "handwriting", "2.0.0"
STORE = "models"  # its model store, a folder of the repository
# What a project ships (what build-image and deploy read) is copied from ours; its Dockerfile
# then adds this label.
OWN_LABEL = ("com.acme.service", "handwriting")


def release_tag() -> str:
    """The tag a release of this version of aiship carries: what the snippets pin."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return f"v{project['version']}"


def aiship_at_tag() -> str:
    """OWNER/NAME@TAG, as act's --local-repository and the snippets' `uses:` name it."""
    return f"{AISHIP}@{release_tag()}"


def snippets() -> dict[str, str]:
    """The consumer's file path -> its text, as README shows it."""
    found = dict(SNIPPET.findall(README.read_text(encoding="utf-8")))
    assert found, "README has no `<!-- consumer: PATH -->` snippets"
    return found


def write_consumer(dest: Path, extra: dict[str, str] | None = None) -> Path:
    """The consumer's files in DEST: README's snippets, and EXTRA (path -> text)."""
    for path, text in {**snippets(), **(extra or {})}.items():
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_text(text, encoding="utf-8")
    copy_project(REPO_ROOT, dest)
    shutil.copytree(REPO_ROOT / MANIFESTS_FOLDER, dest / MANIFESTS_FOLDER)
    with (dest / "Dockerfile").open("a", encoding="utf-8") as dockerfile:
        dockerfile.write("LABEL {}={}\n".format(*OWN_LABEL))
    (dest / STORE).mkdir()
    return dest
