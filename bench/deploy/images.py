"""The release images: v1 and v2 built and pushed by the steps, the broken variants and the
canary's bad candidates derived from v1 in the registry."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiship.clients.registry import ImageRef, RegistryLogin
from aiship.commands.build_image import ImageBuild, build_image
from aiship.commands.deploy.release import Release
from aiship.commands.push_image import push_image
from aiship.local.base_image import usable_base_image
from aiship.local.registry_server import LocalRegistry
from aiship.local.release_variants import broken_releases, canary_releases
from aiship.support.processes import run
from bench.repo import REPO_ROOT

REPOSITORY = "aiship"


@dataclass(frozen=True)
class Images:
    v1: Release
    v2: Release
    bad_model: Release
    never_ready: Release
    crashing: Release
    local_tags: tuple[str, ...]  # in the docker engine, removed at the end
    # The canary's bad candidates, made only when the canary is benched.
    answers_5xx: Release | None = None
    answers_4xx: Release | None = None
    slow: Release | None = None
    skewed: Release | None = None

    def release(self, name: str) -> Release:
        return getattr(self, name)


def make_images(work: Path, registry: LocalRegistry, candidates: bool) -> Images:
    """v1 and v2 (models 1.0.0 and 2.0.0, two code revisions) built and pushed by the steps;
    the broken variants derived from v1 in the registry, as the tests make them, and with
    CANDIDATES the canary's bad candidates too."""
    base = usable_base_image()
    login = RegistryLogin(registry.host)
    releases, tags = {}, []
    for version, revision in (("1.0.0", "1" * 40), ("2.0.0", "2" * 40)):
        model = work / f"model-{version}"
        run(
            [
                sys.executable,
                str(REPO_ROOT / "model" / "train.py"),
                "--out",
                str(model),
                "--version",
                version,
            ],
            what="training the sample model",
            timeout=300,
        )
        local = f"aiship-bench:{version}-{uuid.uuid4().hex[:6]}"
        built = build_image(
            ImageBuild(model_dir=model, base_image=base, tags=(local,), revision=revision)
        )
        target = ImageRef.parse(f"{registry.host}/{REPOSITORY}:{version}")
        digest = push_image(login, target, source=local).digest
        tags += [local, str(target)]
        releases[version] = Release(
            f"{target.name}@{digest}", revision, built.card.version, built.card.sha256
        )
    v1 = releases["1.0.0"]
    bad = {}
    if candidates:
        sys.path.insert(0, str(REPO_ROOT / "model"))  # model/canary_models.py imports train
        import canary_models  # the bad candidates' writers, beside the sample model

        folder = work / "canary-models"
        bad = canary_releases(login, v1, work / "model-1.0.0", folder, canary_models)
    return Images(
        v1=v1,
        v2=releases["2.0.0"],
        **broken_releases(login, v1),
        **bad,
        local_tags=tuple(tags),
    )
