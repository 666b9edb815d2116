"""One local stack for the module, started and stopped through the real command line.

The commands run from a clone of HEAD, so a commit landing mid-test (a new revision, so a new
image) or someone's unsaved edit cannot change what is built; the state folder and every port are
the test's own, so a developer's stack on the default ports is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from aiship.clients.docker import docker
from aiship.local.kube_cluster import down as cluster_down
from aiship.support.ports import free_port
from tests.clirun import run_steps
from tests.repo import REPO_ROOT

RUN_TIMEOUT = 600
# BASE_IMAGE stays: where CI can pull, the stack builds on it instead of bootstrapping one.
CLEAN_PREFIXES = ("GITHUB_", "TF_BUILD", "STEPS_OUTPUT_FILE", "AZURE_", "REGISTRY_")


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@dataclass(frozen=True)
class LocalStack:
    repo: Path  # the clone the commands run from
    state_dir: Path
    azurite_port: int
    registry_port: int
    service: str
    port: int
    swarm_was_active: bool

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> str:
        return f"http://127.0.0.1:{self.azurite_port}/devstoreaccount1/models"

    def steps(self, *args: str, stdin=subprocess.DEVNULL, env: dict | None = None) -> Run:
        """`python -m aiship ARGS` in its own process; outputs read from STEPS_OUTPUT_FILE."""
        outputs = self.state_dir.parent / "outputs.json"
        outputs.unlink(missing_ok=True)
        done = run_steps(
            *args,
            env={"STEPS_OUTPUT_FILE": str(outputs), **(env or {})},
            drop=CLEAN_PREFIXES,
            cwd=self.repo,
            timeout=RUN_TIMEOUT,
            stdin=stdin,
        )
        values = json.loads(outputs.read_text()) if outputs.is_file() else {}
        return Run(done.returncode, done.stdout, done.stderr, values)

    def local(self, action: str, *args: str, **options) -> Run:
        return self.steps("local", action, "--state-dir", str(self.state_dir), *args, **options)

    def run(self, *args: str, **options) -> Run:
        ports = (
            "--azurite-port",
            str(self.azurite_port),
            "--registry-port",
            str(self.registry_port),
        )
        service = ("--service", self.service, "--port", str(self.port))
        return self.local("run", *ports, *service, *args, **options)

    def record(self) -> dict:
        path = self.state_dir / "stack.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def version(self) -> dict:
        return requests.get(f"{self.url}/version", timeout=5).json()

    def tags(self) -> list[str]:
        response = requests.get(
            f"http://127.0.0.1:{self.registry_port}/v2/aiship/tags/list", timeout=5
        )
        return sorted(response.json().get("tags") or []) if response.status_code == 200 else []


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory, docker_engine) -> Iterator[LocalStack]:
    """`local up` on ports of its own, from a clone of HEAD; `local down` and cleanup after."""
    work = tmp_path_factory.mktemp("local")
    repo = work / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(repo)], check=True, timeout=120)
    port = free_port()
    stack = LocalStack(
        repo=repo,
        state_dir=work / "state",
        azurite_port=free_port(),
        registry_port=free_port(),
        service=f"aiship-test-{port}",
        port=port,
        swarm_was_active=docker(["info", "--format", "{{.Swarm.LocalNodeState}}"]).strip()
        == "active",
    )
    try:
        up = stack.local(
            "up",
            *("--azurite-port", str(stack.azurite_port)),
            *("--registry-port", str(stack.registry_port)),
        )
        assert up.returncode == 0, up.stderr
        yield stack
    finally:
        stack.local("down")
        _stop_leftovers(stack)


def _stop_leftovers(stack: LocalStack) -> None:
    """What `local down` should have stopped, stopped anyway; and the images the runs tagged."""
    for name in ("azurite", "registry"):
        pid = stack.record().get(name, {}).get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    docker(["service", "rm", f"{stack.service}-swarm"], timeout=60, check=False)
    cluster_down(stack.state_dir / "cluster")
    prefix = f"127.0.0.1:{stack.registry_port}/"
    listed = docker(
        ["images", "--format", "{{.Repository}}:{{.Tag}}"], timeout=60, check=False
    ).split()
    references = [reference for reference in listed if reference.startswith(prefix)]
    if references:
        # --force: swarm removes the stopped task containers that use them only later
        docker(["rmi", "--force", "--no-prune", *references], timeout=120, check=False)
