"""Another repository uses our reusable workflows, composite actions and Azure templates by
their published names (OWNER/aiship/...@TAG, `template: ...@aiship`), as README's "Use it from
your repository" shows: its files are README's snippets, its model is its own, and the tag is
mapped to this checkout. Its CI runs green under act against the local stand-ins; its Azure
pipelines compile against the official schema; every step of both systems accepts what it is
given (--dry-run); a value holding shell metacharacters reaches a step as data."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import train  # model/train.py, the data scientist's script (not a package)

from aiship.clients.login import RegistryLogin
from aiship.clients.registry import ImageRef, RegistryClient
from aiship.commands.attest import image_labels
from aiship.local.registry_server import LocalRegistry
from tests.clirun import run_steps
from tests.pipelines.azure_yaml import pipeline
from tests.pipelines.ci_systems import AzureRun, GitHubRun, github_model, job_checkout
from tests.pipelines.test_contract import azure_group, failures, github_variables, outputs_of
from tests.pipelines.test_pipelines import azure_schema, tool
from tests.repo import REPO_ROOT
from tests.system.act import ActRun, run_act
from tests.system.consumer import (
    MODEL_NAME,
    MODEL_VERSION,
    OWN_LABEL,
    REPOSITORY,
    STORE,
    aiship_at_tag,
    release_tag,
    snippets,
    write_consumer,
)
from tests.system.test_ci_under_act import (
    act_image,  # noqa: F401  (a fixture)
    assert_the_build_ran,
    base_for_act,  # noqa: F401  (a fixture)
    commit,
    head,
    work_tree,
)

WORKFLOWS = (".github/workflows/ci.yml", ".github/workflows/release.yml")
PIPELINES = ("azure-pipelines/ci.yml", "azure-pipelines/release.yml")
HOSTILE = '$(touch /tmp/pwned); `touch /tmp/pwned`; echo "x" > /tmp/pwned'


def hostile_workflow() -> str:
    """A job that hands a value to one of our actions, then checks nothing ran it."""
    action = f"OWNER/aiship/.github/actions/{{}}@{release_tag()}"
    return f"""\
name: hostile
on: push
permissions:
  contents: read
jobs:
  resolve:
    runs-on: ubuntu-latest
    steps:
      - uses: {action.format("setup")}
      - uses: {action.format("resolve-image")}
        id: resolve
        with:
          image: 127.0.0.1:5000/app:main
          digest: ${{{{ vars.DIGEST }}}}
          identity: C=ZZ,ST=local,O=aiship,CN=aiship
      - name: Nothing ran the value
        id: check
        if: always()
        run: test ! -e /tmp/pwned
"""


@pytest.fixture
def consumer(tmp_path) -> Path:
    return write_consumer(tmp_path / "consumer")


def test_every_snippet_pins_this_release_of_aiship():
    tag = release_tag()
    found = snippets()
    for path in (*WORKFLOWS, *PIPELINES):
        text = found[path]
        pins = re.findall(r"OWNER/aiship/\S+@(\S+)|aiship-ref: (\S+)|ref: refs/tags/(\S+)", text)
        assert pins, path
        assert {value for pin in pins for value in pin if value} == {tag}, path


def test_the_consumer_workflows_pass_actionlint_and_zizmor(consumer):
    workflows = [str(consumer / name) for name in WORKFLOWS]
    linted = subprocess.run(
        [tool("actionlint"), "-no-color", *workflows],
        capture_output=True,
        text=True,
        cwd=consumer,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = subprocess.run(  # on the repository, as a user runs it: its settings are found
        [tool("zizmor"), "--offline", "--format", "json", str(consumer)],
        capture_output=True,
        text=True,
        cwd=consumer,
        timeout=120,
    )
    assert json.loads(audited.stdout or "[]") == [], audited.stdout
    assert audited.returncode == 0, audited.stderr


@pytest.mark.parametrize(
    ("name", "parameters"),
    [(PIPELINES[0], {}), (PIPELINES[1], {}), (PIPELINES[1], {"rollback": True})],
)
def test_the_consumer_pipelines_compile_to_the_official_schema(consumer, name, parameters):
    document = pipeline(consumer / name, {"aiship": REPO_ROOT}, **parameters)

    errors = jsonschema.Draft7Validator(azure_schema()).iter_errors(document)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []
    checkouts = [step["checkout"] for step in _steps(document) if "checkout" in step]
    assert checkouts and set(checkouts) == {"self", "aiship"}


def _steps(document: dict) -> list[dict]:
    return [
        step
        for stage in document["stages"]
        for job in stage["jobs"]
        for step in job.get("steps") or job["strategy"]["runOnce"]["deploy"]["steps"]
    ]


def test_every_consumer_step_accepts_what_its_ci_system_gives_it(
    consumer, trained_model_dir, tmp_path
):
    """The contract test of this repository's pipelines, on the consumer's: each system's
    steps, with the settings as setup writes them, run with --dry-run in the consumer's
    checkout; they plan the same work as this repository's own pipelines."""
    job_checkout(consumer, trained_model_dir, source=None)
    (tmp_path / "aiship").mkdir()
    ours = job_checkout(tmp_path / "aiship", trained_model_dir)
    for workflow, name in zip(WORKFLOWS, PIPELINES, strict=True):
        github = list(
            GitHubRun(
                consumer / workflow,
                github_variables(),
                outputs_of,
                tmp_path,
                workspace=consumer,
                repository=REPOSITORY,
            ).runs()
        )
        azure = list(
            AzureRun(
                consumer / name,
                azure_group(),
                outputs_of,
                tmp_path,
                workspace=consumer,
                repositories={"aiship": REPO_ROOT},
            ).runs()
        )
        assert github and failures(github) == failures(azure) == []
        assert [(r.command, r.plan) for r in github] == [(r.command, r.plan) for r in azure]
        own = GitHubRun(
            Path(workflow).name, github_variables(), outputs_of, tmp_path, workspace=ours
        ).runs()
        assert [r.command for r in github] == [r.command for r in own]


# Under act: the consumer's CI, and a hostile value handed to one of our actions.


@pytest.fixture(scope="module")
def consumer_repo(tmp_path_factory) -> tuple[Path, Path]:
    """(the consumer's work tree with its model published in its store, aiship's copy)."""
    folder = tmp_path_factory.mktemp("consumer")
    write_consumer(folder, {".github/workflows/hostile.yml": hostile_workflow()})
    model = tmp_path_factory.mktemp("handwriting")
    train.write_model(model, name=MODEL_NAME, version=MODEL_VERSION)
    published = run_steps(
        "publish-model", "--store", str(folder / STORE), "--model-dir", str(model)
    )
    assert published.returncode == 0, published.stderr
    commit(folder, REPOSITORY)
    return folder, work_tree(tmp_path_factory.mktemp("aiship"))


@pytest.fixture(scope="module")
def consumer_ci(consumer_repo, act_image, base_for_act, tmp_path_factory) -> ActRun:  # noqa: F811
    folder, aiship = consumer_repo
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as registry:
        yield (
            registry,
            run_act(
                folder,
                workflow=WORKFLOWS[0],
                job="build",
                image=act_image,
                variables={
                    "MODEL_STORE": STORE,
                    "MODEL_NAME": MODEL_NAME,
                    "IMAGE_REPOSITORY": f"{registry.host}/handwriting",
                    "BASE_IMAGE": base_for_act,
                },
                repositories={aiship_at_tag(): aiship},
                timeout=900,
            ),
        )


@pytest.mark.docker
def test_the_consumer_ci_runs_green_through_our_reusable_workflow(consumer_ci, consumer_repo):
    folder, _ = consumer_repo
    registry, run = consumer_ci
    reached = github_model(workspace=folder, repository=REPOSITORY).steps(folder / WORKFLOWS[0])

    assert_the_build_ran(run, reached)
    # its commit, its model: the image's labels as verify-push and build-image output them
    assert f"revision={head(folder)}" in run.log
    assert f"model_version={MODEL_VERSION}" in run.log
    # its own Dockerfile and app/, not aiship's: the label only its Dockerfile sets
    image = ImageRef.parse(re.search(r"^.*\bimage=(\S+@sha256:[0-9a-f]{64})", run.log, re.M)[1])
    labels = image_labels(RegistryClient(RegistryLogin(registry.host)), image)
    assert labels[OWN_LABEL[0]] == OWN_LABEL[1]


@pytest.mark.docker
def test_shell_metacharacters_in_an_input_reach_the_step_as_data(consumer_repo, act_image):  # noqa: F811
    folder, aiship = consumer_repo

    run = run_act(
        folder,
        workflow=".github/workflows/hostile.yml",
        job="resolve",
        image=act_image,
        variables={"DIGEST": HOSTILE},
        repositories={aiship_at_tag(): aiship},
        timeout=600,
    )

    results = run.results_by_id("resolve")
    assert results[("resolve", "resolve")] == "failure", run.log
    assert f"error: --digest {HOSTILE!r} is not a sha256:<64 hex> digest" in run.log
    assert "exitcode '2': failure" in run.log  # the step's own exit code
    assert results[("check",)] == "success", run.log  # /tmp/pwned was never made
